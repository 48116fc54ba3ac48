"""Every GraphQL operation in queries/ is valid against the vendored DS schema and within DS's limits.

DS rejects at its end what these tests catch here: unknown or conflicting fields, documents deeper
than graphql-ruby's `max_depth 15`, and (by our own rule, docs/ds-api.md §13 rule 26) deprecated fields.
A page size above 100 would be clamped silently (§4).
"""

from __future__ import annotations

import pytest
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    IntValueNode,
    NoDeprecatedCustomRule,
    NoUnusedFragmentsRule,
    OperationDefinitionNode,
    SelectionSetNode,
    TypeInfo,
    TypeInfoVisitor,
    VariableNode,
    parse,
    specified_rules,
    validate,
    visit,
    Visitor,
)

from connector.ds import operations
from connector.schema import schema

MAX_DEPTH = 15  # app/graphql/api/v2/schema.rb `max_depth 15`
MAX_PAGE = 100  # max_page_size; larger `first` is clamped silently
RULES = [r for r in specified_rules if r is not NoUnusedFragmentsRule] + [NoDeprecatedCustomRule]

# The contract with the rest of the connector: file stem -> operation name.
EXPECTED = {
    "accepter": "dossierAccepter",
    "classer_sans_suite": "dossierClasserSansSuite",
    "deleted_dossiers_page": "getDeletedDossiersPage",
    "demarche_descriptor": "getDemarcheDescriptor",
    "demarche_probe": "getDemarcheProbe",
    "dossier": "getDossier",
    "dossier_listing_page": "getDossierListingPage",
    "dossiers_page": "getDossiersPage",
    "envoyer_message": "dossierEnvoyerMessage",
    "modifier_annotations": "dossierModifierAnnotations",
    "passer_en_instruction": "dossierPasserEnInstruction",
    "pending_deleted_dossiers_page": "getPendingDeletedDossiersPage",
    "repasser_en_instruction": "dossierRepasserEnInstruction",
}
NAMES = operations.names()


def validation_errors(doc: DocumentNode) -> list[str]:
    return [e.message for e in validate(schema(), doc, RULES)]


def _depth(selection_set: SelectionSetNode | None, fragments: dict[str, FragmentDefinitionNode]) -> int:
    """graphql-ruby's QueryDepth: each nested field adds 1 (``__typename`` included); fragment
    spreads and inline fragments are expanded in place and add nothing."""
    if selection_set is None:
        return 0
    depth = 0
    for sel in selection_set.selections:
        if isinstance(sel, FieldNode):
            depth = max(depth, 1 + _depth(sel.selection_set, fragments))
        elif isinstance(sel, InlineFragmentNode):
            depth = max(depth, _depth(sel.selection_set, fragments))
        elif isinstance(sel, FragmentSpreadNode):
            depth = max(depth, _depth(fragments[sel.name.value].selection_set, fragments))
    return depth


def query_depths(doc: DocumentNode) -> dict[str, int]:
    """Depth of each operation in ``doc``, keyed by operation name."""
    fragments = {d.name.value: d for d in doc.definitions if isinstance(d, FragmentDefinitionNode)}
    return {
        d.name.value if d.name else "<anonymous>": _depth(d.selection_set, fragments)
        for d in doc.definitions
        if isinstance(d, OperationDefinitionNode)
    }


def depth_violations(doc: DocumentNode) -> list[str]:
    return [f"{op} has depth {d} > {MAX_DEPTH}" for op, d in query_depths(doc).items() if d > MAX_DEPTH]


def page_size_violations(doc: DocumentNode) -> list[str]:
    """Every literal ``first`` and every default of a variable passed as ``first`` must be ≤ 100."""
    defaults = {
        v.variable.name.value: v.default_value
        for d in doc.definitions
        if isinstance(d, OperationDefinitionNode)
        for v in d.variable_definitions
        if v.default_value is not None
    }
    found: list[str] = []

    class FirstArguments(Visitor):
        def enter_argument(self, node, *_):
            if node.name.value != "first":
                return
            value = node.value
            if isinstance(value, VariableNode):
                value = defaults.get(value.name.value)
            if isinstance(value, IntValueNode) and int(value.value) > MAX_PAGE:
                found.append(f"first: {value.value} > {MAX_PAGE}")

    visit(doc, FirstArguments())
    return found


def spread_names(doc: DocumentNode) -> set[str]:
    found: set[str] = set()

    class Spreads(Visitor):
        def enter_fragment_spread(self, node, *_):
            found.add(node.name.value)

    visit(doc, Spreads())
    return found


# --- every operation ------------------------------------------------------------------------------


def test_operations_are_the_expected_ones():
    assert NAMES == sorted(EXPECTED)


@pytest.mark.parametrize("name", NAMES)
def test_one_named_operation_per_file(name):
    definitions = parse(operations._read(name)).definitions
    assert len(definitions) == 1, f"{name}.graphql must hold one operation and no fragment"
    (op,) = definitions
    assert isinstance(op, OperationDefinitionNode)
    assert op.name is not None and op.name.value == operations.operation_name(name) == EXPECTED[name]


@pytest.mark.parametrize("name", NAMES)
def test_operation_validates_against_schema(name):
    assert validation_errors(operations.document(name)) == []


@pytest.mark.parametrize("name", NAMES)
def test_operation_depth_within_ds_limit(name):
    assert depth_violations(operations.document(name)) == []


@pytest.mark.parametrize("name", NAMES)
def test_operation_page_size_within_ds_limit(name):
    assert page_size_violations(operations.document(name)) == []


@pytest.mark.parametrize("name", NAMES)
def test_sent_document_has_no_unused_fragment(name):
    errors = validate(schema(), operations.document(name), [NoUnusedFragmentsRule])
    assert [e.message for e in errors] == []


def test_fragments_file_holds_only_fragments_all_used():
    doc = parse(operations._read(operations.FRAGMENTS))
    not_fragments = [d.kind for d in doc.definitions if not isinstance(d, FragmentDefinitionNode)]
    assert not_fragments == []
    declared = {d.name.value for d in doc.definitions}
    used = set().union(*(spread_names(operations.document(n)) for n in NAMES))
    assert declared - used == set(), "fragments no operation uses"


def test_no_groupes_instructeurs_closed_argument():
    # DS answers 500 on groupeInstructeurs(closed:) (docs/ds-api.md §9.1): filter on `closed` client-side.
    found: list[str] = []

    class Groupes(Visitor):
        def enter_field(self, node, *_):
            if node.name.value == "groupeInstructeurs" and node.arguments:
                found.append(node.name.value)

    for name in NAMES:
        visit(operations.document(name), Groupes())
    assert found == []


# A champ's __typename is its real type only if the document has a fragment on that type (§7).
TYPENAME_NEEDS_FRAGMENT = {
    "AddressChamp", "CommuneChamp", "DepartementChamp", "RegionChamp", "PaysChamp",
    "DropDownListChamp", "HeaderSectionChamp", "ExplicationChamp", "YesNoChamp", "DatetimeChamp",
}


@pytest.mark.parametrize("name", NAMES)
def test_typename_and_demandeur_fragments_present(name):
    """docs/ds-api.md §13 rule 9: a champ __typename needs fragments on the types DS would otherwise
    disguise; a demandeur needs PersonneMoraleIncomplete, or degraded SIRET data is invalid_null."""
    type_info = TypeInfo(schema())
    reads: set[str] = set()
    conditions: set[str] = set()

    class Reads(Visitor):
        def enter_field(self, node, *_):
            parent = type_info.get_parent_type()
            if node.name.value == "__typename" and parent is not None and parent.name == "Champ":
                reads.add("champ typename")
            if node.name.value == "demandeur":
                reads.add("demandeur")

        def enter_inline_fragment(self, node, *_):
            if node.type_condition:
                conditions.add(node.type_condition.name.value)

    visit(operations.document(name), TypeInfoVisitor(type_info, Reads()))
    if "champ typename" in reads:
        assert TYPENAME_NEEDS_FRAGMENT - conditions == set()
    if "demandeur" in reads:
        assert "PersonneMoraleIncomplete" in conditions


# --- the checks themselves can fail ---------------------------------------------------------------

# dossier, champs, then 5 × (rows, champs) through fragments, then LEAF: 12 fields above LEAF.
NESTED = """
query deep {
  dossier(number: 1) {
    champs { ...Rows }
  }
}
fragment Rows on Champ {
  ... on RepetitionChamp { rows { champs { ... on RepetitionChamp { rows { champs {
    ... on RepetitionChamp { rows { champs { ... on RepetitionChamp { rows { champs {
      ... on RepetitionChamp { rows { champs { LEAF } } }
    } } } } } }
  } } } } } }
}
"""


def nested(leaf: str) -> DocumentNode:
    doc = parse(NESTED.replace("LEAF", leaf))
    assert validation_errors(doc) == []  # only the depth check may reject it
    return doc


def test_depth_counts_fields_and_typename_not_fragments():
    assert query_depths(nested("__typename")) == {"deep": 13}
    leaf = "id ... on PieceJustificativeChamp { files { filename } }"
    assert query_depths(nested(leaf)) == {"deep": 14}


def test_depth_limit_is_inclusive():
    doc = nested("... on RepetitionChamp { rows { champs { __typename } } }")
    assert query_depths(doc) == {"deep": 15}
    assert depth_violations(doc) == []


def test_too_deep_document_is_rejected():
    doc = nested("... on RepetitionChamp { rows { champs { ... on RepetitionChamp { rows { id } } } } }")
    assert depth_violations(doc) == ["deep has depth 16 > 15"]


def test_unknown_field_is_rejected():
    doc = parse("query q { dossier(number: 1) { id numero } }")
    assert validation_errors(doc) == [
        "Cannot query field 'numero' on type 'Dossier'. Did you mean 'number'?"
    ]


def test_unaliased_value_merge_conflict_is_rejected():
    doc = parse(
        """
        query q { dossier(number: 1) { champs {
          ... on CheckboxChamp { value }
          ... on IntegerNumberChamp { value }
        } } }
        """
    )
    errors = validation_errors(doc)
    assert len(errors) == 1 and "conflicting types 'Boolean!' and 'BigInt'" in errors[0], errors


def test_deprecated_field_and_argument_are_rejected():
    doc = parse(
        """
        query q { demarche(number: 1) {
          dossiers(order: DESC) { nodes { messages { attachment { byteSizeBigInt } } } }
        } }
        """
    )
    errors = validation_errors(doc)
    assert any("Demarche.dossiers(order:)" in e and "deprecated" in e for e in errors), errors
    assert any("Message.attachment" in e and "deprecated" in e for e in errors), errors


def test_large_page_size_is_rejected():
    doc = parse(
        """
        query q($n: Int = 500) { demarche(number: 1) {
          dossiers(first: 101) { nodes { id } }
          deletedDossiers(first: $n) { nodes { id } }
          pendingDeletedDossiers(first: 100) { nodes { id } }
        } }
        """
    )
    assert page_size_violations(doc) == ["first: 101 > 100", "first: 500 > 100"]


def test_unused_fragment_is_reported():
    doc = parse("query q { dossier(number: 1) { id } } fragment F on Dossier { number }")
    errors = validate(schema(), doc, [NoUnusedFragmentsRule])
    assert [e.message for e in errors] == ["Fragment 'F' is never used."]
