"""ENT-École forms: what each champ of a démarche means (``profiles``), the schools a dossier lists
(``schools``), what is wrong in it (``rules``, ``evaluate``), the lists the ENT provider and billing need
(``exports``), and the sync hook that keeps them current (``hooks``)."""
