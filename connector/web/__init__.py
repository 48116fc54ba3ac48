"""The instructeurs' web view (``ds-connector serve``): ``app`` (pages), ``auth`` (accounts, sessions), ``labels``."""
