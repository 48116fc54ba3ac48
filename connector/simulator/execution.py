"""One GraphQL request run with graphql-core, answered the way graphql-ruby and DS answer it.

Documents are parsed, validated (graphql-core's specified rules) and depth-checked once per
query text. Execution uses :class:`FastExecutor`, graphql-core's executor with a fast path for
fields read from dict shapes: same results and errors, a fraction of the cost.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field as dataclass_field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLID,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLString,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    execute_sync,
    get_named_type,
    is_abstract_type,
    is_leaf_type,
    parse,
    validate,
)
from graphql.execution.executor import Executor, to_nodes
from graphql.language import Visitor, visit
from graphql.pyutils import Path, Undefined

MAX_DEPTH = 15
_CACHE_SIZE = 256
_NON_NULL = "Cannot return null for non-nullable field "
_GENERAL, _LEAF, _COMPOSITE, _TYPENAME = "general", "leaf", "composite", "__typename"


class FastExecutor(Executor):
    """graphql-core's executor, with a fast path for fields read from dict shapes.

    A field takes it only when graphql-core would just read the dict: no resolver of its own, no
    arguments or directives. Leaves are coerced directly; objects, lists and abstract types are
    completed by :meth:`_complete`, which follows ``complete_value`` step by step (same values,
    same errors and null propagation) without building a resolve info per value. Anything
    unusual (a non-dict value, a type with ``is_type_of``, a middleware) takes graphql-core's path.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._plans: dict[int, tuple[Any, list]] = {}
        self._runtime_types: dict[tuple[Any, Any], Any] = {}

    @staticmethod
    def _plan(parent_type: Any, grouped_field_set: Any) -> list[tuple]:
        """Per field: (response name, field nodes, how to run it, field name, field, coerce, non-null,
        whether a ``str`` value is its own output)."""
        plan = []
        for response_name, details in grouped_field_set.items():
            name = details[0].node.name.value
            field = parent_type.fields.get(name)
            how, coerce, non_null, str_ok = _GENERAL, None, False, False
            if name == "__typename":
                how = _TYPENAME
            elif (field is not None and field.resolve is None
                  and all(not d.node.arguments and not d.node.directives for d in details)):
                named = get_named_type(field.type)
                non_null = isinstance(field.type, GraphQLNonNull)
                if not is_leaf_type(named):
                    how = _COMPOSITE
                elif field.type is named or (non_null and field.type.of_type is named):
                    how, coerce = _LEAF, named.coerce_output_value
                    str_ok = named in (GraphQLString, GraphQLID) or named.serialize is GraphQLScalarType.serialize
            plan.append((response_name, details, how, name, field, coerce, non_null, str_ok))
        return plan

    def execute_fields(self, parent_type, source_value, path, grouped_field_set, position_context):  # type: ignore[no-untyped-def]
        """Shapes hold plain data (no callables), so a dict value is what the default resolver returns."""
        if type(source_value) is not dict or self.middleware_manager is not None:
            return super().execute_fields(parent_type, source_value, path, grouped_field_set, position_context)
        entry = self._plans.get(id(grouped_field_set))
        if entry is None:  # keep the field set alive with its plan, so that its id is not reused
            entry = self._plans[id(grouped_field_set)] = (grouped_field_set, self._plan(parent_type, grouped_field_set))
        results: dict[str, Any] = {}
        get = source_value.get
        for response_name, details, how, name, field, coerce, non_null, str_ok in entry[1]:
            if how is _LEAF:
                value = get(name)
                if value is None:
                    if not non_null:
                        results[response_name] = None
                        continue
                elif str_ok and type(value) is str:
                    results[response_name] = value
                    continue
                else:
                    try:
                        out = coerce(value)
                    except Exception:  # let execute_field raise graphql-core's own error
                        out = None
                    if out is not None and out is not Undefined:
                        results[response_name] = out
                        continue
            elif how is _COMPOSITE:
                field_path = Path(path, response_name, parent_type.name)
                site = (field, parent_type, details, field_path, [])
                try:
                    results[response_name] = self._complete(field.type, site, field_path, get(name))
                except Exception as raw_error:
                    self.handle_field_error(raw_error, field.type, details, field_path)
                    results[response_name] = None
                continue
            elif how is _TYPENAME:
                results[response_name] = parent_type.name
                continue
            result = self.execute_field(
                parent_type, source_value, details, Path(path, response_name, parent_type.name), position_context
            )
            if result is not Undefined:
                results[response_name] = result
        return results

    def _info(self, site: tuple) -> Any:
        """The field's resolve info (field, parent type, field nodes, path, memo), built once when needed."""
        field, parent_type, details, field_path, memo = site
        if not memo:
            memo.append(self.build_resolve_info(field, to_nodes(details), parent_type, field_path))
        return memo[0]

    def _complete(self, return_type: Any, site: tuple, path: Path, value: Any) -> Any:
        """``complete_value`` for shapes: NonNull, List, Object and abstract types of dict values."""
        if isinstance(return_type, GraphQLNonNull):
            completed = self._complete(return_type.of_type, site, path, value)
            if completed is None:
                raise TypeError(f"{_NON_NULL}{site[1]}.{site[2][0].node.name.value}.")
            return completed
        if value is None:
            return None
        if isinstance(return_type, GraphQLList) and type(value) is list:
            item_type = return_type.of_type
            items = []
            for index, item in enumerate(value):
                item_path = Path(path, index, None)
                try:
                    items.append(self._complete(item_type, site, item_path, item))
                except Exception as raw_error:
                    self.handle_field_error(raw_error, item_type, site[2], item_path)
                    items.append(None)
            return items
        if type(value) is dict and not is_leaf_type(return_type) and not isinstance(return_type, GraphQLList):
            runtime = return_type
            if is_abstract_type(return_type):
                info = self._info(site)
                name = (return_type.resolve_type or self.type_resolver)(value, info, return_type)
                runtime = self._runtime_types.get((return_type, name))
                if runtime is None:  # graphql-core's checks, once per abstract type and name
                    runtime = self.ensure_valid_runtime_type(name, return_type, site[2], info, value)
                    self._runtime_types[(return_type, name)] = runtime
            if runtime.is_type_of is None:
                grouped_field_set = self.collect_subfields(runtime, site[2])[0]
                return self.execute_fields(runtime, value, path, grouped_field_set, None)
        return super().complete_value(return_type, site[2], self._info(site), path, value, None)

    def complete_value(self, return_type, field_details_list, info, path, result, position_context):  # type: ignore[no-untyped-def]
        """Values that resolvers return (``champs(id:)``...) are completed by :meth:`_complete` too."""
        if type(result) is dict or type(result) is list:
            site = (None, info.parent_type, field_details_list, path, [info])
            return self._complete(return_type, site, path, result)
        return super().complete_value(return_type, field_details_list, info, path, result, position_context)


@dataclass(frozen=True)
class Prepared:
    """A parsed and validated document, or the errors graphql-ruby would answer for it."""

    document: DocumentNode | None
    errors: list[dict[str, Any]]
    fragment_types: frozenset[str]  # every type condition in the document (DS's has_fragment?)
    operations: dict[str | None, OperationDefinitionNode]
    depths: dict[str | None, int] = dataclass_field(default_factory=dict)  # per operation, filled on first use


class Documents:
    """Prepared documents by query text (an LRU: clients replay the same few documents)."""

    def __init__(self, schema: GraphQLSchema):
        self.schema = schema
        self._cache: OrderedDict[str, Prepared] = OrderedDict()

    def get(self, query: str) -> Prepared:
        hit = self._cache.get(query)
        if hit is None:
            hit = self._cache[query] = self._prepare(query)
            if len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(query)
        return hit

    def _prepare(self, query: str) -> Prepared:
        try:
            document = parse(query)
        except GraphQLError as exc:
            return Prepared(None, [exc.formatted], frozenset(), {})
        errors = validate(self.schema, document)
        if errors:
            return Prepared(None, [e.formatted for e in errors], frozenset(), {})
        types: set[str] = set()

        class TypeConditions(Visitor):
            def enter_inline_fragment(self, node: InlineFragmentNode, *_: Any) -> None:
                if node.type_condition:
                    types.add(node.type_condition.name.value)

            def enter_fragment_definition(self, node: FragmentDefinitionNode, *_: Any) -> None:
                types.add(node.type_condition.name.value)

        visit(document, TypeConditions())
        operations = {
            (d.name.value if d.name else None): d for d in document.definitions if isinstance(d, OperationDefinitionNode)
        }
        return Prepared(document, [], frozenset(types), operations)


def select_operation(prepared: Prepared, name: str | None) -> OperationDefinitionNode | str:
    """The operation to run, or graphql-ruby's message when there is none."""
    if name:
        return prepared.operations.get(name) or f'No operation named "{name}"'
    if len(prepared.operations) > 1:
        return "An operation name is required"
    if not prepared.operations:
        return "Must provide an operation."
    return next(iter(prepared.operations.values()))


def depth(operation: OperationDefinitionNode, fragments: dict[str, FragmentDefinitionNode]) -> int:
    """graphql-ruby's QueryDepth: nested fields count, fragments and introspection fields do not."""

    def walk(selection_set: SelectionSetNode | None, seen: frozenset[str]) -> int:
        deepest = 0
        for sel in selection_set.selections if selection_set else ():
            if isinstance(sel, FieldNode):
                if not sel.name.value.startswith("__"):
                    deepest = max(deepest, 1 + walk(sel.selection_set, seen))
            elif isinstance(sel, InlineFragmentNode):
                deepest = max(deepest, walk(sel.selection_set, seen))
            elif isinstance(sel, FragmentSpreadNode) and sel.name.value not in seen:
                frag = fragments.get(sel.name.value)
                if frag is not None:
                    deepest = max(deepest, walk(frag.selection_set, seen | {sel.name.value}))
        return deepest

    return walk(operation.selection_set, frozenset())


def format_error(error: GraphQLError) -> dict[str, Any]:
    """graphql-core's error, with graphql-ruby's wording and DS's code for a null in a non-null field."""
    out = error.formatted
    if out["message"].startswith(_NON_NULL):
        out["message"] = out["message"].rstrip(".")
        out["extensions"] = {"code": "invalid_null"}
    return dict(out)


class ResolverBug(Exception):
    """A resolver raised something that is not a GraphQLError: DS answers a 500."""


def run(
    schema: GraphQLSchema,
    prepared: Prepared,
    operation: OperationDefinitionNode,
    variables: dict[str, Any],
    context: Any,
    middleware: list[Any] | None = None,
) -> dict[str, Any]:
    """Execute a prepared operation; the JSON body DS answers (``ResolverBug`` on a bug)."""
    name = operation.name.value if operation.name else None
    found = prepared.depths.get(name)
    if found is None:
        definitions = prepared.document.definitions  # type: ignore[union-attr]
        fragments = {d.name.value: d for d in definitions if isinstance(d, FragmentDefinitionNode)}
        found = prepared.depths[name] = depth(operation, fragments)
    if found > MAX_DEPTH:
        return {"errors": [{"message": f"Query has depth of {found}, which exceeds max depth of {MAX_DEPTH}"}]}
    result = execute_sync(
        schema,
        prepared.document,  # type: ignore[arg-type]
        context_value=context,
        variable_values=variables,
        operation_name=name,
        executor_class=FastExecutor,
        middleware=middleware,
    )
    errors = list(result.errors or ())
    for e in errors:
        original = e.original_error
        if original is not None and not isinstance(original, GraphQLError) and not e.message.startswith(_NON_NULL):
            raise ResolverBug(repr(original)) from original
    formatted = [format_error(e) for e in errors]
    if result.data is None and formatted and all("path" not in e for e in formatted):
        return {"errors": formatted}  # request errors (variables...): graphql-ruby sends no data
    return {"errors": formatted, "data": result.data} if formatted else {"data": result.data}
