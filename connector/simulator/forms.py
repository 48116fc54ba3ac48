"""The three ENT-École forms as DS champ descriptors, labels as on the real forms (shared/seeds).

Stable ids are fixed here, so they are the same in every world. Each builder returns fresh
descriptor objects (the app may mutate a world's revisions); option lists share their strings.
:attr:`Form.keys` names the descriptors the seeder fills (headers and explanations fill themselves).

Modelling choices
- Occitanie's schools are one ``MultipleDropDownListChamp`` whose options read
  ``"Ecole primaire , BENAMENIL (0540232J)"``: seed 000 says "saisissez les premières lettres du nom
  de la commune … puis sélectionnez les écoles les unes après les autres", which is DS's multiple
  drop-down combobox (one champ, typed filter, several picks); Poitiers (seed 001) has the repeated
  block commune + school instead.
- Seed 000 confirms the school count and the cost "dans la liste déroulante": both are
  ``DropDownListChamp``s (options "1".."80" and "41 €".."3 280 €").
- "En qualité de" offers ``MAIRE`` / ``PRÉSIDENT (E)`` / ``Autre`` as in seed 000's screenshot, with a
  conditional "précisez" text champ (present in a dossier only when ``Autre`` is chosen).
- Conditional champs (second référent, "précisez"...) are simply absent from a dossier's champs when
  hidden, as DS omits hidden conditional champs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from connector.simulator.state import ChampDescriptor

OCCITANIE_FEE_EUROS = 41  # 2026-27, seed 004 article 4
MAX_SCHOOL_COUNT = 80
QUALITES = ("MAIRE", "PRÉSIDENT (E)", "Autre")
STATUTS_CONVENTION = ("En attente", "Relancée", "Reçue", "Hors délai", "Classée sans suite")
CRETEIL_DEPARTEMENTS = {"77": "77 - Seine-et-Marne", "93": "93 - Seine-Saint-Denis", "94": "94 - Val-de-Marne"}

# DS champ types exposed under another GraphQL type (descriptor type -> Champ type).
CHAMP_TYPE = {"EmailChamp": "TextChamp", "PhoneChamp": "TextChamp", "TextareaChamp": "TextChamp"}
SELF_FILLED = ("HeaderSectionChamp", "ExplicationChamp")


def euros(amount: int) -> str:
    """``3280`` -> ``"3 280 €"`` (the cost drop-down's option text)."""
    return f"{amount:,} €".replace(",", " ")


@dataclass(slots=True)
class Form:
    champs: list[ChampDescriptor]
    annotations: list[ChampDescriptor]
    keys: dict[str, ChampDescriptor] = field(default_factory=dict)


class _Descriptors:
    def __init__(self) -> None:
        self.keys: dict[str, ChampDescriptor] = {}

    def __call__(self, key: str | None, stable_id: int, type_: str, label: str, description: str | None = None,
                 required: bool = False, options: tuple[str, ...] | None = None,
                 children: tuple[ChampDescriptor, ...] = ()) -> ChampDescriptor:
        d = ChampDescriptor(stable_id, type_, label, description, required,
                            None if options is None else list(options), list(children))
        if key:
            self.keys[key] = d
        return d


_NOM_HINT = "Saisir le prénom et le NOM : (ex : Jean GARCIA)"
_ENGAGEMENT_CONVENTION = (
    "La collectivité s'engage à transmettre la convention signée et à la déposer dans "
    "Démarches-simplifiées dans un délai de deux mois, à compter de la date de soumission de la "
    "demande d'adhésion. À défaut la demande d'adhésion à l'ENT-École sera classée sans suite et les "
    "accès seront fermés aux écoles."
)
_ENGAGEMENT_PAIEMENT = (
    "La collectivité est informée qu'elle devra s'acquitter du paiement de la contribution au coût de "
    "l'ENT-École dès réception du titre de perception (1er trimestre 2027)."
)
SIGNATURE_LABEL = (
    "J'approuve le projet de convention tel qu'il m'est présenté sur le lien ci-dessus avec les "
    "éléments qui sont indiqués dans ce formulaire : en particulier les coordonnées du signataire et "
    "les écoles concernées. J'accepte, reconnais et signe par la présente cette convention."
)


def occitanie(school_options: tuple[str, ...], fee: int = OCCITANIE_FEE_EUROS, year: str = "2026-2027") -> Form:
    """Occitanie's adhesion form; ``fee`` (euros per school) and ``year`` make another campaign's."""
    d = _Descriptors()
    counts = tuple(str(k) for k in range(1, MAX_SCHOOL_COUNT + 1))
    costs = tuple(euros(k * fee) for k in range(1, MAX_SCHOOL_COUNT + 1))
    champs = [
        d(None, 4210001, "HeaderSectionChamp", "1. IDENTIFICATION DU SIGNATAIRE DE LA CONVENTION"),
        d("departement", 4210002, "DepartementChamp", "Département", required=True),
        d("signataire", 4210003, "TextChamp", _NOM_HINT, required=True,
          description="Prénom NOM, avec le nom en lettres majuscules."),
        d("qualite", 4210004, "DropDownListChamp", "En qualité de", required=True, options=QUALITES),
        d("qualite_autre", 4210005, "TextChamp", "Précisez la qualité du signataire", required=True),
        d("telephone", 4210006, "PhoneChamp", "Téléphone de contact de la collectivité", required=True),
        d(None, 4210007, "HeaderSectionChamp", "2. LISTE DES ÉCOLES À INSCRIRE"),
        d(None, 4210008, "ExplicationChamp", "A savoir", description=(
            "Un seul formulaire doit être complété par collectivité. Il doit inclure l'ensemble des écoles "
            "qui pourront bénéficier de l'ENT-École en 2026-2027. Sur la base de cette demande d'adhésion, "
            "l'académie ouvre les accès à l'ENT pour les écoles.")),
        d("ecoles", 4210009, "MultipleDropDownListChamp", "Sélection des écoles pour les communes :",
          required=True, options=school_options, description=(
              "Saisissez les premières lettres du nom de la commune dans la barre. Vous pourrez alors "
              "sélectionner les écoles les unes après les autres.")),
        d(None, 4210010, "HeaderSectionChamp", f"3. COÛT DE L'ADHÉSION POUR L'ANNÉE SCOLAIRE {year}"),
        d(None, 4210011, "ExplicationChamp", "Confirmation du coût de l'adhésion", description=(
            "Merci d'indiquer le nombre d'écoles sélectionnées et de confirmer le coût pour la collectivité.")),
        d("nombre_ecoles", 4210012, "DropDownListChamp",
          "Nombre d'écoles inscrites (pour le calcul du coût annuel)", required=True, options=counts),
        d("cout", 4210013, "DropDownListChamp", "Coût annuel pour la collectivité", required=True, options=costs),
        d(None, 4210014, "HeaderSectionChamp", "4. IDENTIFICATION DU RÉFÉRENT VILLE (FACULTATIF)"),
        d("referent", 4210015, "YesNoChamp", "La collectivité souhaite désigner un référent ville", required=True),
        d("referent_nom", 4210016, "TextChamp", _NOM_HINT, required=True, description=(
            "Ces informations permettant d'identifier nominativement le rédacteur de publication sur l'ENT.")),
        d("referent_email", 4210017, "EmailChamp", "Adresse de messagerie du référent ville", required=True),
        d("referent2", 4210018, "YesNoChamp", "La collectivité souhaite désigner un second référent ville",
          required=True),
        d("referent2_nom", 4210019, "TextChamp", "Saisir le prénom et le NOM du second référent ville",
          required=True),
        d("referent2_email", 4210020, "EmailChamp", "Adresse de messagerie du second référent ville",
          required=True),
        d(None, 4210021, "HeaderSectionChamp", "5. ENGAGEMENTS DE LA COLLECTIVITÉ"),
        d("engagement_convention", 4210022, "CheckboxChamp", _ENGAGEMENT_CONVENTION, required=True),
        d("engagement_paiement", 4210023, "CheckboxChamp", _ENGAGEMENT_PAIEMENT, required=True),
    ]
    annotations = [
        d("date_reception", 4210101, "DateChamp", "Date de réception de la convention signée"),
        d("convention_recue", 4210102, "CheckboxChamp", "Convention signée reçue"),
        d("relance", 4210103, "DateChamp", "Relance envoyée le"),
        d("statut", 4210104, "DropDownListChamp", "Statut convention", required=True, options=STATUTS_CONVENTION),
    ]
    return Form(champs, annotations, d.keys)


def poitiers(school_options: tuple[str, ...]) -> Form:
    d = _Descriptors()
    ecole = (
        d("ecole_commune", 3870110, "CommuneChamp", "Commune dans laquelle se trouve l'école", required=True),
        d("ecole_choix", 3870111, "DropDownListChamp", "Choix de l'école concernée", required=True,
          options=school_options),
    )
    champs = [
        d(None, 3870101, "HeaderSectionChamp", "1. IDENTIFICATION DU SIGNATAIRE DE LA CONVENTION"),
        d("signataire", 3870102, "TextChamp", _NOM_HINT, required=True),
        d("qualite", 3870103, "DropDownListChamp", "En qualité de", required=True, options=QUALITES),
        d("qualite_autre", 3870104, "TextChamp", "Précisez la qualité du signataire", required=True),
        d(None, 3870105, "HeaderSectionChamp", "2. CHOIX DES ECOLES DU PERIMETRE DE LA COLLECTIVITE"),
        d(None, 3870106, "ExplicationChamp", "CHOISIR LES ECOLES :", description=(
            "Faire un choix en sélectionnant la ville, puis l'école concernée. Répéter l'opération pour "
            "chacune des écoles concernées en cliquant sur \"Ajouter un élément pour « Les écoles du "
            "périmètre de la collectivité »\"")),
        d("ecoles", 3870107, "RepetitionChamp", "Les écoles du périmètre de la collectivité :", required=True,
          children=ecole),
        d(None, 3870120, "HeaderSectionChamp", "3. IDENTIFICATION DU REFERENT COLLECTIVITE (FACULTATIF)"),
        d("referent", 3870121, "YesNoChamp", "La collectivité souhaite désigner un référent collectivité.",
          required=True, description=(
              "Le référent assure la gestion de l'espace de communication de la commune (périscolaire, "
              "service scolaire...) sur l'ENT. Sa désignation est facultative.")),
        d("referent_nom", 3870122, "TextChamp",
          "Saisir le prénom et le NOM du référent collectivité : (ex : Jean GARCIA)"),
        d("referent_email", 3870123, "EmailChamp", "Adresse de messagerie du référent collectivité"),
        d(None, 3870130, "HeaderSectionChamp", "4. SIGNATURE DEMATERIALISEE DE LA CONVENTION"),
        d(None, 3870131, "ExplicationChamp", "Avant de passer à la validation", description=(
            "Vous devez vérifier les éléments de ce formulaire : 1. coordonnées du signataire ; 2. ensemble "
            "des écoles ayant accès à l'ENT pour votre collectivité. Dans le cadre de cette convention, les "
            "opérations techniques d'accrochage du GAR ne sont pas facturées aux collectivités.")),
        d("signature", 3870132, "CheckboxChamp", SIGNATURE_LABEL, required=True),
    ]
    annotations = [
        d("aaf_transmis", 3870201, "CheckboxChamp", "Écoles transmises à l'éditeur (AAF)"),
        d("aaf_date", 3870202, "DateChamp", "Date de transmission AAF"),
        d("observations", 3870203, "TextareaChamp", "Observations"),
    ]
    return Form(champs, annotations, d.keys)


def creteil() -> Form:
    d = _Descriptors()
    uai = d("uai", 2954316, "TextChamp", "UAI de l'école abonné", required=True,
            description="L'ensemble des écoles abonnées doivent être identifiés par leurs UAI.")
    champs = [
        d(None, 2954301, "HeaderSectionChamp", "1. Identification de la Commune abonnée"),
        d("departement", 2954302, "DropDownListChamp", "Département", required=True,
          options=tuple(CRETEIL_DEPARTEMENTS.values())),
        d("commune", 2954303, "CommuneChamp", "Commune", required=True, description=(
            "Renseignez le nom ou le code postal de la ville puis, sélectionnez la commune dans la liste. "
            "Exemple : Strasbourg")),
        d(None, 2954304, "HeaderSectionChamp", "2. Identification du déposant"),
        d("civilite", 2954305, "CiviliteChamp", "Civilité", required=True),
        d("nom", 2954306, "TextChamp", "Nom", required=True),
        d("prenom", 2954307, "TextChamp", "Prénom", required=True),
        d("fonction", 2954308, "TextChamp", "Statut/fonction", required=True),
        d("email", 2954309, "EmailChamp", "Adresse électronique", required=True,
          description="Exemple : adresse@email.com"),
        d("telephone", 2954310, "PhoneChamp", "Numéro de téléphone", required=True,
          description="Format attendu : Un numéro de téléphone valide. Exemple : 0987654321"),
        d(None, 2954311, "HeaderSectionChamp",
          "3. Demande de mise à disposition de l'Annuaire académique fédérateur"),
        d("ecoles", 2954315, "RepetitionChamp", "3.1. Liste des écoles concernées", required=True,
          description="Pour ajouter une école, cliquer sur « + »", children=(uai,)),
        d(None, 2954320, "HeaderSectionChamp", "3.2. Dépôt du certificat d'adhésion au groupement de commande"),
        d("certificat", 2954321, "PieceJustificativeChamp",
          "Déposer une copie du courrier d'adhésion au groupement de commandes", required=True, description=(
              "Ce courrier vous a été envoyé lors de votre adhésion au groupement de commande. Il comporte "
              "votre numéro de dossier et la date de dépôt.")),
        d(None, 2954322, "HeaderSectionChamp", "3.3. Dépôt des bons de commande éditeur"),
        d("bon_editeur", 2954323, "PieceJustificativeChamp", "Bon de commande", required=True,
          description="Il s'agit d'une copie du bon de commande envoyé par la commune à l'éditeur."),
        d("bon_chorus", 2954324, "PieceJustificativeChamp", "Bon de commande Chorus", required=True, description=(
            "Afin de sécuriser le dépôt de la demande et la livraison des annuaires merci de déposer à la "
            "fois le bon de commande éditeur et le bon de commande chorus.")),
        d(None, 2954330, "HeaderSectionChamp", "4. Commentaires éventuels"),
        d("commentaires", 2954331, "TextareaChamp", "Commentaires éventuels"),
    ]
    annotations = [
        d("aaf_livre", 2954401, "CheckboxChamp", "Annuaires (AAF) livrés au titulaire"),
        d("aaf_date", 2954402, "DateChamp", "Date de livraison des annuaires"),
        d("engagement_chorus", 2954403, "TextChamp", "Numéro d'engagement juridique Chorus"),
    ]
    return Form(champs, annotations, d.keys)
