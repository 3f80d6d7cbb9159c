"""A node's inputs, declared once: the node's schema (with its inputs) is its declaration, and `validate_inputs`
and `execute` read their values through it.

ComfyUI passes an optional input to `validate_inputs` and `execute` only when the graph has it (an input added
after a workflow was saved, an unconnected socket), so the value a missing input stands for must be the
default the node shows, not a second copy of it in a method's keyword defaults. `Declared.values` fills every
missing input with its declared default (None for a socket without one).

`validate_inputs`' signature is read by ComfyUI (execution.py, validate_inputs): it passes only the inputs the
method names, skips its own checks (min/max, combo options) for exactly those, and lists a refusal once per
named input. `queue_check_reads(names)` makes that signature from the names and hands the check the values.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

from comfy_api.latest import io


class Values(dict):
    """An input name -> its value, also as attributes (`v.size`)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"no input {name!r}") from None


class Declared:
    """A node class's schema builder: `schema()` builds it (every time ComfyUI asks: the price badge follows the
    environment); its inputs are taken from the first one and kept, for `validate_inputs` and `execute`."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build
        self._inputs: list[Any] | None = None

    def schema(self) -> Any:
        return self._build()

    def inputs(self) -> list[Any]:
        if self._inputs is None:
            self._inputs = list(self._build().inputs or [])
        return self._inputs

    def defaults(self) -> dict[str, Any]:
        return {i.id: getattr(i, "default", None) for i in self.inputs()}

    def values(self, given: dict[str, Any], names: tuple[str, ...] | None = None, *,
               as_lists: bool = False) -> Values:
        """What ComfyUI passed, plus the declared default of every input it left out (as a one-item list for a
        node with is_input_list). `names`: only these (an undeclared one, e.g. a core widget this host lacks,
        is None); otherwise every declared input and whatever else was passed."""
        defaults = self.defaults()
        wanted = names if names is not None else (*defaults, *(k for k in given if k not in defaults))
        out = Values()
        for name in wanted:
            if name in given:
                out[name] = given[name]
            else:
                default = defaults.get(name)
                out[name] = [default] if as_lists and default is not None else default
        return out


class WanNode(io.ComfyNode):
    """A node of this pack: its schema is its `declared` one."""

    declared: Declared

    @classmethod
    def define_schema(cls) -> io.Schema:
        return cls.declared.schema()


def queue_check_reads(*names: str) -> Callable[[Callable[[Any, Values], bool | str]], Callable[..., bool | str]]:
    """`validate_inputs` from a check of `Values`: ComfyUI sees a signature naming exactly `names` and passes
    those; the check gets them with the declared defaults of those the graph leaves out (the class's
    `declared`). A linked input still comes as None: not known until the node runs."""
    def make(check: Callable[[Any, Values], bool | str]) -> Callable[..., bool | str]:
        def validate_inputs(cls: Any, **given: Any) -> bool | str:
            return check(cls, cls.declared.values(given, names))

        validate_inputs.__signature__ = inspect.Signature(    # type: ignore[attr-defined]
            [inspect.Parameter("cls", inspect.Parameter.POSITIONAL_OR_KEYWORD)] +
            [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for name in names])
        validate_inputs.__doc__ = check.__doc__
        validate_inputs.__qualname__ = check.__qualname__
        return validate_inputs
    return make
