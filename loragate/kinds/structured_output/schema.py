"""The card's output schema (a pydantic model named `module:Class`) and how raw model text is read against it.

Validity is strict: the whole output (surrounding whitespace aside) is JSON that validates, with no key twice in one
object (a JSON reader would keep the last value: `{"room": "1", "room": "12"}` is not one answer). An output that
validates only once a Markdown code fence or the prose around the outermost braces is stripped is "lenient-valid":
counted and reported, never counted as valid, and scored as an invalid output."""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import json
import re
import sys
from pathlib import Path

from pydantic import BaseModel, PydanticUserError, TypeAdapter, ValidationError

from loragate.card.settings import CardError, TaskCard
from loragate.data.card_files import did_you_mean
from loragate.data.parsing import ParsedOutput, SchemaError
from loragate.kinds.structured_output.fields import layout

FENCE = re.compile(r"^\s*```[A-Za-z]*[ \t]*\n?(.*?)\n?```\s*$", re.DOTALL)
_SHOWN = 60  # characters of a bad output quoted in a reason


def output_schema(card: TaskCard) -> type[BaseModel]:
    """The card's pydantic model (`structured.output_schema`), loaded once per card file."""
    if card.block("structured") is None:
        raise CardError(f"task {card.name}: kind structured_output needs 'structured: {{output_schema: module:Class}}'")
    return load_schema(card.block("structured").output_schema, card.path.parent if card.path else None, card.name)


@functools.lru_cache(maxsize=None)
def load_schema(spec: str, card_dir: Path | None, task: str) -> type[BaseModel]:
    """`module:Class`: the module is `module.py` (dots as folders) beside the card or in a folder above it, up to the
    project's root (the first folder with a pyproject.toml); else it is imported (an installed package). Every
    failure names the card field and the fix."""
    module_name, class_name = spec.split(":")
    where = f"task {task}: structured.output_schema {spec!r}"
    candidates = project_files(card_dir, module_name.replace(".", "/") + ".py") if card_dir else []
    found = next((path for path in candidates if path.is_file()), None)
    try:
        module = import_file(found) if found else importlib.import_module(module_name)
    except KeyboardInterrupt:
        raise
    except ModuleNotFoundError as exc:
        if found is not None:  # the module was found; something it imports was not
            raise CardError(f"{where}: importing {found} failed: {type(exc).__name__}: {exc}; install what it "
                            f"imports") from exc
        looked = f"none of {', '.join(str(path) for path in candidates)} exists and " if candidates else ""
        nearby = {path.stem for folder in {c.parent for c in candidates} if folder.is_dir()
                  for path in folder.glob("*.py")}
        raise CardError(f"{where}: {looked}module {module_name!r} is not importable ({exc})"
                        f"{did_you_mean(module_name.rpartition('.')[2], sorted(nearby))}; put {module_name}.py "
                        f"beside the card or at the project's root, or install the package that holds it") from exc
    except BaseException as exc:  # SystemExit too: a module that exits while imported would end pytest's session
        raise CardError(f"{where}: importing {found or module_name} failed: {type(exc).__name__}: {exc}; fix the "
                        f"module so importing it only defines the model (a script's code goes under "
                        f"`if __name__ == \"__main__\":`)") from exc
    schema = getattr(module, class_name, None)
    if not (isinstance(schema, type) and issubclass(schema, BaseModel)):
        models = [name for name, value in vars(module).items()
                  if isinstance(value, type) and issubclass(value, BaseModel) and value is not BaseModel]
        raise CardError(f"{where}: {module_name}.{class_name} is {'missing' if schema is None else repr(schema)}"
                        f"{did_you_mean(class_name, models)}; name a pydantic BaseModel subclass defined in "
                        f"{module.__file__}")
    return schema


def declared_schema(card: TaskCard, constrained: bool) -> type[BaseModel] | None:
    """The output schema of a card that declares one (a `structured:` block), else None, loaded now: the plugin
    calls this at start-up, so a module that is missing, raises or exits is a CardError before any model loads,
    not an error of pytest's own, and so is an unordered field that names no list field of it. `constrained`: the
    run decodes under the schema's grammar, so it needs a JSON Schema too (a field of an arbitrary Python type has
    none)."""
    if card.block("structured") is None:
        return None
    schema = output_schema(card)
    layout(card, schema)
    if constrained:
        json_schema_problem(schema, f"task {card.name}: structured.output_schema "
                                    f"{card.block('structured').output_schema!r}")
    return schema


def json_schema_problem(schema: type[BaseModel], where: str) -> None:
    """A CardError naming the fields of `schema` that have no JSON Schema (what constrained decoding compiles into
    its grammar), where the model as a whole has none."""
    try:
        schema.model_json_schema()
    except PydanticUserError as exc:
        fields = [name for name, info in schema.model_fields.items() if not has_json_schema(info.annotation)]
        which = f"field {', '.join(fields)} has" if fields else "its fields have"
        raise CardError(f"{where}: {schema.__name__} has no JSON Schema, which constrained decoding needs: {which} "
                        f"none ({str(exc).splitlines()[0]}); give it a JSON type (str, int, a pydantic model, ...), "
                        f"or decode without --constrain and eval.constrain: schema") from exc


def has_json_schema(annotation: object) -> bool:
    """Whether a field's type has a JSON Schema of its own."""
    try:
        TypeAdapter(annotation).json_schema()
    except PydanticUserError:
        return False
    return True


def project_files(card_dir: Path, relative: str) -> list[Path]:
    """`relative` beside the card and in each folder above it, up to the first that holds a pyproject.toml (only
    beside the card when none does)."""
    paths = []
    for folder in [card_dir, *card_dir.resolve().parents]:
        paths.append(folder / relative)
        if (folder / "pyproject.toml").is_file():
            return paths
    return paths[:1]


def import_file(path: Path) -> object:
    """The module at `path`, under a name of its own so two projects' `schema.py` never collide."""
    name = f"loragate_schema_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]}_{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None  # a *.py file always has a source loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # pydantic resolves forward references through the module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def canonical(value: BaseModel) -> str:
    """One JSON text per object: compact, fields in the schema's order. Gold targets are written this way."""
    return value.model_dump_json()


def parse_object(text: str, schema: type[BaseModel]) -> ParsedOutput:
    """`text` read strictly against `schema`; where that fails, whether it validates once a code fence or surrounding
    prose is stripped (lenient-valid, still invalid). A key written twice in one object is an error of its own
    (`duplicate_key` at the key's path), before any of the schema's. Never raises."""
    found = duplicate_keys(text)
    errors = tuple(SchemaError(location(loc), "duplicate_key") for loc in found)
    try:
        value = schema.model_validate_json(text)
    except ValidationError as exc:
        errors += tuple(SchemaError(location(err["loc"]), err["type"]) for err in exc.errors())
        first = f"{location(exc.errors()[0]['loc'])}: {exc.errors()[0]['msg']}"
    else:
        if not errors:
            return ParsedOutput(value, None)
    count = f"{len(errors)} error{'s' * (len(errors) > 1)}"
    if found:
        reason = (f"{location(found[0])}: duplicate key {found[0][-1]!r}, of which a JSON reader keeps only the last "
                  f"value ({count}): {quote(text)}")
    elif errors[0].type == "json_invalid":
        reason = f"{'empty output' if not text.strip() else 'not JSON'}: {quote(text)}"
    else:
        reason = f"{first} ({count})"
    for stripped, how in ((fenced(text), "a code fence"), (braced(text), "the text around the JSON object")):
        if stripped is None or duplicate_keys(stripped):
            continue
        try:
            schema.model_validate_json(stripped)
        except ValidationError:
            continue
        return ParsedOutput(None, f"valid only after stripping {how} (lenient-valid, not valid): {quote(text)}", errors,
                            lenient=True)
    return ParsedOutput(None, reason, errors)


class KeyPairs(list):
    """One JSON object's (key, value) pairs as written: json's object_pairs_hook, which keeps a repeated key."""


def duplicate_keys(text: str) -> list[tuple]:
    """The location of every key written a second time in one object of `text` (("location", "room"),
    ("items", 0, "name")), outer objects first; [] for text that is not JSON."""
    try:
        tree = json.loads(text, object_pairs_hook=KeyPairs)
    except (ValueError, RecursionError):
        return []
    found: list[tuple] = []
    pending: list[tuple[object, tuple]] = [(tree, ())]  # a stack, not recursion: the output may nest deeply
    while pending:
        node, loc = pending.pop()
        if isinstance(node, KeyPairs):
            seen = set()
            for key, _ in node:
                if key in seen:
                    found.append((*loc, key))
                seen.add(key)
            pending += [(value, (*loc, key)) for key, value in reversed(node)]
        elif isinstance(node, list):
            pending += [(item, (*loc, index)) for index, item in reversed(list(enumerate(node)))]
    return found


def fenced(text: str) -> str | None:
    """The inside of a Markdown code fence that is the whole output, else None."""
    match = FENCE.match(text)
    return match.group(1) if match else None


def braced(text: str) -> str | None:
    """From the first "{" to the last "}", where there is text around them, else None."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start or (start == 0 and end == len(text.rstrip()) - 1):
        return None
    return text[start : end + 1]


def location(loc: tuple) -> str:
    """A pydantic error location as a path: ("items", 0, "qty") -> "items[0].qty"; () -> "(root)"."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path or "(root)"


def quote(text: str) -> str:
    return repr(text if len(text) <= _SHOWN else text[:_SHOWN] + "...")
