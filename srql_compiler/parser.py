"""SRQL text → :mod:`srql_compiler.ast`, with lark (LALR(1)) and caret diagnostics."""

from __future__ import annotations

import re
from datetime import timedelta
from functools import cache
from pathlib import Path

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError
from lark.parsers.lalr_analysis import Shift

from srql_compiler import ast
from srql_compiler.errors import SRQLError, did_you_mean
from srql_compiler.keywords import KEYWORDS

_GRAMMAR = Path(__file__).with_name("srql.lark")

_SHORT_UNITS = {
    "ns": timedelta(microseconds=0.001),
    "us": timedelta(microseconds=1),
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}
LONG_UNITS = {
    "millisecond": timedelta(milliseconds=1),
    "second": timedelta(seconds=1),
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(weeks=1),
}

# How expected terminals read in a diagnostic.
_TERMINAL_WORDS = {
    "NAME": "a name",
    "STRING": "a 'string'",
    "INT": "a number",
    "NUMBER": "a number",
    "DURATION": "a duration (5m)",
    "UNIT": "a time unit",
    "COMP_OP": "a comparison",
    "STAR": "'*'",
    "LPAR": "'('",
    "RPAR": "')'",
    "COMMA": "','",
    "SEMICOLON": "';'",
    "FROM_TODAY": "FROM TODAY",
    "FROM_YESTERDAY": "FROM YESTERDAY",
    "FROM_LAST": "FROM LAST",
    "FROM_BETWEEN": "FROM BETWEEN",
    "SHOW": "SHOW/FIND",
    "ADD_OP": "'+'",
    "MUL_OP": "'/'",
    "MINUS": "'-'",
    "DOT": "'.'",
    "$END": "end of query",
}
# Clause keywords are what a user most likely meant; list them first.
_PRIORITY = ("WHERE", "GROUP", "WINDOW", "HAVING", "ORDER", "LIMIT", "JOIN", "FROM", "EMIT", "LATEST", "SHOW/FIND",
             "COUNT", "STREAM")


class _Located(Exception):
    """A fault found while building the tree; ``parse`` turns it into an SRQLError on the query text."""

    def __init__(self, message: str, span: ast.Span, suggestion: str | None = None) -> None:
        super().__init__(message)
        self.message, self.span, self.suggestion = message, span, suggestion


@cache
def _lark() -> Lark:
    # cache=True keeps the LALR tables in the temp dir, keyed by the grammar: a new process starts in ms.
    return build_lark(cache=True)


def build_lark(*, cache: bool) -> Lark:
    """SRQL's lark parser. The transformer runs inside the LALR parser (no intermediate parse tree).

    A cache-loaded and a freshly built parser differ in small ways (rule names are plain ``str`` in one,
    lark ``Token`` in the other), so the tests drive both.
    """
    return Lark(_GRAMMAR.read_text(), parser="lalr", propagate_positions=True, maybe_placeholders=False,
                transformer=_ToAst(), cache=cache)


# lark's common.WS terminal, as its scanner spells it
_WS_CHARS = " \t\f\r\n"
_WS_REGEXP = "(?:[ \t\x0c\r\n])+"


class _FastLALR:
    """A lean driver for lark's own LALR(1) tables, contextual lexer scanners and our transformer.

    Why not ``Lark.parse``: on a ~30-token query lark's general machinery (a generator lexer with line
    counting, a ``ParserState`` object, and a chain of four wrapper objects per reduction — child filter,
    single-child expansion, position propagation, visit wrapper) cost more than half a millisecond, about
    a third of a whole compile. This loop runs the same tables, the same per-state scanners (with lark's
    keyword callbacks) and the same child filtering (anonymous tokens dropped, ``_rule`` helpers spliced
    in, ``?rule`` with one child inlined), so it accepts exactly the same language and builds the same
    tree. It handles only success: on any fault it returns ``None`` and :func:`parse` re-runs lark, which
    raises the error (and its expected-token list) exactly as before.
    """

    def __init__(self, lark: Lark) -> None:
        frontend = lark.parser
        table = frontend.parser.parser.parse_table
        self._lexer = frontend.lexer  # ContextualLexer: one BasicLexer per parser state
        self._start = table.start_states["start"]
        self._end = table.end_states["start"]
        transformer = _ToAst()
        reductions: dict = {}
        # state → {symbol: new state (shift / goto) or a reduction tuple}
        self._states: dict[int, dict[str, object]] = {}
        for state, actions in table.states.items():
            row: dict[str, object] = {}
            for sym, (action, arg) in actions.items():
                if action is Shift:
                    row[sym] = arg
                else:
                    if arg not in reductions:
                        reductions[arg] = self._reduction(arg, transformer)
                    row[sym] = reductions[arg]
            self._states[state] = row
        self._scanners: dict[int, tuple] = {}
        self._units: dict[tuple[int, int, str], int] = {}

    @staticmethod
    def _reduction(rule, transformer: _ToAst) -> tuple:
        """(size, rule name, kept child indices with splice flags or None for all, inline one child, callback)."""
        keep = [(i, not sym.is_term and sym.name.startswith("_")) for i, sym in enumerate(rule.expansion)
                if rule.options.keep_all_tokens or not (sym.is_term and sym.filter_out)]
        include = None if len(keep) == len(rule.expansion) and not any(x for _, x in keep) else tuple(keep)
        # str(): a freshly built grammar names rules with lark Tokens (a str subclass), a cached one with
        # plain str; the driver tells a unit reduction from the others by `type(action) is str`.
        origin = str(rule.origin.name)
        name = str(rule.alias or rule.options.template_source or origin)
        method = getattr(transformer, name, None)
        if method is not None:
            method = getattr(method, "base_func", method)  # skip lark's v_args wrapper: called as f(meta, children)
        expand1 = bool(rule.options.expand1 and not rule.alias)
        if expand1 and include is None and len(rule.expansion) == 1:
            return origin  # `?rule: child`: the child is the value; only the state changes
        return (len(rule.expansion), origin, include, expand1, method, name)

    def _scanner(self, state: int) -> tuple:
        lexer = self._lexer.lexers[state]
        scanner = lexer.scanner  # builds lark's scanner (and its keyword callbacks) on first use
        mres = tuple(scanner._mres)
        if lexer.ignore_types >= {"WS"} and lexer.terminals_by_name["WS"].pattern.to_regexp() == _WS_REGEXP:
            # Skip the whitespace before a token inside the token's own match (possessively: no terminal
            # starts with whitespace) instead of matching it as a WS token of its own; the token is then
            # the named group of the alternative that matched.
            mres = tuple(re.compile(f"[{_WS_CHARS}]*+(?:{mre.pattern})", mre.flags) for mre in mres)
        out = (mres, lexer.callback, lexer.ignore_types)
        self._scanners[state] = out
        return out

    def parse(self, text: str):
        states = self._states
        scanners = self._scanners
        units = self._units
        new_token = Token._future_new  # Token() only adds a deprecated-keyword check
        state_stack = [self._start]
        value_stack: list = []
        # Trailing whitespace is ignored anyway: stopping before it ends the token loop without a match.
        pos, end = 0, len(text.rstrip(_WS_CHARS))
        while True:
            # ---- next token, with the scanner of the current state (lark's contextual lexer)
            state = state_stack[-1]
            if pos < end:
                mres, callbacks, ignore = scanners.get(state) or self._scanner(state)
                m = None
                for mre in mres:
                    m = mre.match(text, pos, end)
                    if m:
                        break
                if m is None:
                    return None
                ttype = m.lastgroup
                value, pos = m.group(ttype), m.end()
                start = pos - len(value)
                if ttype in ignore:
                    continue
                tok = new_token(ttype, value, start, None, None, None, None, pos)
                if ttype in callbacks:
                    tok = callbacks[ttype](tok)
                    ttype = tok.type
            else:
                tok, ttype = None, "$END"
            # ---- reduce as often as needed, then shift (lark's ParserState.feed_token)
            while True:
                action = states[state_stack[-1]].get(ttype)
                if action is None:
                    return None
                if type(action) is int:
                    if tok is None:
                        return None
                    state_stack.append(action)
                    value_stack.append(tok)
                    break
                if type(action) is str:
                    # A run of `?rule: child` reductions (an operand climbing atom → unary → ... → expr) keeps
                    # the value and the state below; where it ends depends only on (state below, top state,
                    # lookahead), so each run is followed once and remembered.
                    below, top = state_stack[-2], state_stack[-1]
                    key = (below, top, ttype)
                    landed = units.get(key)
                    if landed is None:
                        step = action
                        while type(step) is str:
                            landed = states[below][step]
                            step = states[landed].get(ttype)  # type: ignore[index]
                        units[key] = landed  # type: ignore[assignment]
                    state_stack[-1] = landed
                    continue
                size, origin, include, expand1, method, name = action  # type: ignore[misc]
                if size:
                    children = value_stack[-size:]
                    del value_stack[-size:]
                else:
                    children = []
                if include is not None:
                    kept: list = []
                    for i, splice in include:
                        if splice:
                            kept += children[i].children
                        else:
                            kept.append(children[i])
                    children = kept
                if expand1 and len(children) == 1:
                    value = children[0]
                elif method is not None:
                    value = method(_Meta(children), children)
                else:
                    value = Tree(name, children)
                if size:
                    del state_stack[-size:]
                state_stack.append(states[state_stack[-1]][origin])  # type: ignore[arg-type]
                value_stack.append(value)
                if tok is None and state_stack[-1] == self._end:
                    return value


@cache
def _fast() -> _FastLALR:
    return _FastLALR(_lark())


def _fast_parse(query: str) -> ast.Statement | None:
    """The statement, or None when the query has any fault (lark's parser then reports it)."""
    try:
        return _fast().parse(query)
    except Exception:  # a fault found by a transformer method (or a bug here): let lark parse and report
        return None


def parse(query: str) -> ast.Statement:
    """Parse SRQL text into an unbound statement. Raises :class:`SRQLError` on any malformed input."""
    if not isinstance(query, str):
        raise SRQLError(f"a query must be a string, not {type(query).__name__}")
    if not query.strip():
        raise SRQLError("empty query: expected SHOW, FIND, COUNT or STREAM", query)
    try:
        stmt = _fast_parse(query)
        if stmt is None:  # a fault: lark's own parser reports it
            stmt = _lark().parse(query)
    except UnexpectedInput as err:
        raise _syntax_error(query, err) from None
    except (_Located, VisitError) as err:
        located = err.orig_exc if isinstance(err, VisitError) else err
        if isinstance(located, _Located):
            span = located.span
            raise SRQLError.at(located.message, query, span[0], max(1, span[1] - span[0]), located.suggestion) from None
        raise SRQLError(f"internal error while parsing: {located}", query) from None
    except RecursionError:
        raise SRQLError("query nests too deeply", query) from None
    # The statement was built by this call and is not shared yet: set its text in place
    # (dataclasses.replace would rebuild it through __init__ for one field).
    object.__setattr__(stmt, "text", query)
    return stmt


def _syntax_error(query: str, err: UnexpectedInput) -> SRQLError:
    expected = _expected_words(getattr(err, "expected", None) or getattr(err, "allowed", None) or set())
    if isinstance(err, UnexpectedToken) and err.token.type != "$END":
        tok = err.token
        text = str(tok)
        msg = f"syntax error: unexpected {text!r}"
        if expected:
            msg += f"; expected {_join(expected)}"
        raw = getattr(err, "expected", set()) or set()
        keywords = [w for w in raw if w.isalpha() and w.isupper()]
        if "SHOW" in raw:
            keywords += ["FIND", "SELECT"]
        hint = did_you_mean(text, keywords or KEYWORDS, ignore_case=True) if tok.type == "NAME" else None
        return SRQLError.at(msg, query, tok.start_pos or 0, len(text), suggestion=hint)
    if isinstance(err, UnexpectedCharacters):
        ch = query[err.pos_in_stream]
        what = "unterminated string" if ch == "'" else f"unexpected character {ch!r}"
        return SRQLError.at(f"syntax error: {what}", query, err.pos_in_stream)
    msg = "syntax error: the query ends too early"
    if expected:
        msg += f"; expected {_join(expected)}"
    return SRQLError.at(msg, query, len(query.rstrip()))


def _expected_words(names: set[str]) -> list[str]:
    words = {_TERMINAL_WORDS.get(n, n) for n in names if not n.startswith("__")}
    return sorted(words, key=lambda w: (w not in _PRIORITY, _PRIORITY.index(w) if w in _PRIORITY else 0,
                                        not w.isupper(), w))


def _join(words: list[str]) -> str:
    if len(words) > 8:
        words = [*words[:8], "..."]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _span(meta_or_tok: object) -> ast.Span:
    start = getattr(meta_or_tok, "start_pos", 0) or 0
    end = getattr(meta_or_tok, "end_pos", start) or start
    return (start, end)


def _name(tok: Token) -> str:
    s = str(tok)
    return s[1:-1] if s[:1] in "`\"" else s


def _string(tok: Token) -> str:
    return str(tok)[1:-1].replace("''", "'")


class _Meta:
    """Start and end offsets of a rule, computed from its children (lark's own meta is unavailable to a
    transformer that runs inside the LALR parser)."""

    __slots__ = ("end_pos", "start_pos")

    def __init__(self, children: list) -> None:
        # Children come in source order: the first and last ones that have a position bound the rule.
        # Nearly always both are tokens or nodes, which always have one.
        if children:
            first, last = children[0], children[-1]
            if type(first) is Token and type(last) is Token:
                self.start_pos, self.end_pos = first.start_pos or 0, last.end_pos or 0
                return
            if isinstance(first, ast.Node | Token) and isinstance(last, ast.Node | Token):
                self.start_pos = first.span[0] if isinstance(first, ast.Node) else first.start_pos or 0
                self.end_pos = last.span[1] if isinstance(last, ast.Node) else last.end_pos or 0
                return
        self.start_pos, self.end_pos = _bounds(children) or (0, 0)


def _bounds(items: list | tuple) -> ast.Span | None:
    """(start of the first item that has a position, end of the last one), or None."""
    for item in items:
        first = _child_span(item)
        if first is not None:
            break
    else:
        return None
    for item in reversed(items):
        last = _child_span(item)
        if last is not None:
            return (first[0], last[1])
    return None  # unreachable: the forward scan found one


def _child_span(c: object) -> ast.Span | None:
    if isinstance(c, Token):
        return (c.start_pos or 0, c.end_pos or 0)
    if isinstance(c, ast.Node):
        return c.span
    if isinstance(c, tuple | list):
        return _bounds(c)
    return None


def _with_meta(f, _data, children, _meta):
    return f(_Meta(children), children)


@v_args(wrapper=_with_meta)
class _ToAst(Transformer):
    """lark tree → ast nodes. Each method receives the rule's meta (positions) and children."""

    def _fail(self, message: str, span: ast.Span, suggestion: str | None = None) -> _Located:
        return _Located(message, span, suggestion)

    # ---- statements
    def start(self, meta, ch):
        return ch[0]

    def _clauses(self, ch: list) -> dict:
        out: dict = {}
        for c in ch:
            if isinstance(c, tuple) and len(c) == 2 and isinstance(c[0], str):
                out[c[0]] = c[1]
        return out

    def _statement(self, kind: str, meta, ch: list) -> ast.Statement:
        head = ch[1]
        clauses = self._clauses(ch[2:])
        entity, items, distinct = self._resolve_head(kind, head)
        return ast.Statement(
            kind=kind,
            entity=entity,
            items=items,
            distinct=distinct,
            span=_span(meta),
            **clauses,
        )

    def show(self, meta, ch):
        return self._statement("show", meta, ch)

    def count(self, meta, ch):
        return self._statement("count", meta, ch)

    def stream(self, meta, ch):
        return self._statement("stream", meta, ch)

    def _resolve_head(self, kind: str, head: tuple) -> tuple[ast.EntityRef, tuple[ast.HeadItem, ...], bool]:
        distinct, items, entity, span = head
        if entity is not None:
            if kind == "count":
                raise self._fail("COUNT takes an entity, not a projection: COUNT <entity> [WHERE ...]", span)
            return entity, tuple(items), distinct
        # No FROM: the head is the entity itself (`SHOW logs`, `STREAM logs AS l`).
        first = items[0]
        if len(items) != 1 or not isinstance(first.expr, ast.Name) or len(first.expr.parts) != 1 or distinct:
            raise self._fail("expected an entity name, or a projection followed by FROM <entity>", span)
        return ast.EntityRef(first.expr.parts[0], first.alias, span=first.span), (), False

    def head(self, meta, ch):
        distinct = bool(ch) and isinstance(ch[0], Token) and ch[0].type == "DISTINCT"
        items = [c for c in ch if isinstance(c, ast.HeadItem)]
        entity = next((c for c in ch if isinstance(c, ast.EntityRef)), None)
        return (distinct, items, entity, _span(meta))

    def head_item(self, meta, ch):
        if isinstance(ch[0], Token) and ch[0].type == "STAR":
            return ast.HeadItem(None, span=_span(meta))
        alias = ch[1] if len(ch) > 1 else None
        return ast.HeadItem(ch[0], alias, span=_span(meta))

    def entity_ref(self, meta, ch):
        return ast.EntityRef(_name(ch[0]), ch[1] if len(ch) > 1 else None, span=_span(meta))

    def alias(self, meta, ch):
        return _name(ch[1])

    # ---- clauses: each returns (field name of ast.Statement, value)
    def join(self, meta, ch):
        within = ch[4] if len(ch) > 4 else None
        return ("join", ast.JoinClause(ch[1], ch[3], within, span=_span(meta)))

    def within(self, meta, ch):
        return self._duration(ch[1])

    def range_today(self, meta, ch):
        return ("time_range", ast.TimeRange("today", span=_span(meta)))

    def range_yesterday(self, meta, ch):
        return ("time_range", ast.TimeRange("yesterday", span=_span(meta)))

    def range_last(self, meta, ch):
        if int(ch[1]) <= 0:
            raise self._fail("FROM LAST needs a count longer than zero", _span(ch[1]))
        return ("time_range", ast.TimeRange("last", (int(ch[1]), ch[2]), span=_span(meta)))

    def range_between(self, meta, ch):
        return ("time_range", ast.TimeRange("between", (_string(ch[1]), _string(ch[3])), span=_span(meta)))

    def range_since(self, meta, ch):
        return ("time_range", ast.TimeRange("since", (self._duration(ch[1]),), span=_span(meta)))

    def where(self, meta, ch):
        return ("where", ch[1])

    def group_by(self, meta, ch):
        return ("group_by", tuple(c for c in ch[2:] if not isinstance(c, Token)))

    def window(self, meta, ch):
        size = self._duration(ch[1])
        kind, step, delay = "tumble", None, None
        for c in ch[2:]:
            if c == "session":
                kind = "session"
            elif isinstance(c, tuple) and c[0] == "hop":
                kind, step = "hop", self._duration(c[1])
            elif isinstance(c, tuple) and c[0] == "delay":
                delay = self._duration(c[1])
        return ("window", ast.WindowClause(kind, size, step, delay, span=_span(meta)))

    def tumble(self, meta, ch):
        return "tumble"

    def session(self, meta, ch):
        return "session"

    def hop(self, meta, ch):
        return ("hop", ch[1])

    def delay(self, meta, ch):
        return ("delay", ch[1])

    def having(self, meta, ch):
        return ("having", ch[1])

    def order_by(self, meta, ch):
        return ("order_by", tuple(c for c in ch[2:] if isinstance(c, ast.OrderItem)))

    def order_item(self, meta, ch):
        desc = len(ch) > 1 and str(ch[1]).upper() == "DESC"
        return ast.OrderItem(ch[0], desc, span=_span(meta))

    def limit(self, meta, ch):
        n = int(ch[1])
        if n <= 0:
            raise self._fail("LIMIT must be a positive number", _span(ch[1]))
        return ("limit", n)

    def latest(self, meta, ch):
        return ("latest", True)

    def emit_close(self, meta, ch):
        return ("emit", ast.EmitClause("on_close", span=_span(meta)))

    def emit_periodic(self, meta, ch):
        return ("emit", ast.EmitClause("periodic", self._duration(ch[2]), span=_span(meta)))

    def emit_update(self, meta, ch):
        return ("emit", ast.EmitClause("on_update", span=_span(meta)))

    # ---- expressions
    def or_expr(self, meta, ch):
        return ast.BoolOp("or", tuple(c for c in ch if not isinstance(c, Token)), span=_span(meta))

    def and_expr(self, meta, ch):
        return ast.BoolOp("and", tuple(c for c in ch if not isinstance(c, Token)), span=_span(meta))

    def not_(self, meta, ch):
        return ast.NotOp(ch[1], span=_span(meta))

    def compare(self, meta, ch):
        op = {"==": "=", "<>": "!="}.get(str(ch[1]), str(ch[1]))
        return ast.Compare(op, ch[0], ch[2], span=_span(meta))

    def _pred(self, kind: str, meta, ch: list, args: tuple) -> ast.Predicate:
        negated = any(isinstance(c, Token) and c.type == "NOT" for c in ch)
        return ast.Predicate(kind, ch[0], args, negated, span=_span(meta))

    def contains(self, meta, ch):
        return self._pred("contains", meta, ch, (self._str_lit(ch[-1]),))

    def like(self, meta, ch):
        return self._pred("like", meta, ch, (self._str_lit(ch[-1]),))

    def in_list(self, meta, ch):
        return self._pred("in", meta, ch, tuple(c for c in ch[1:] if isinstance(c, ast.Node)))

    def in_cidr(self, meta, ch):
        return self._pred("in_cidr", meta, ch, (self._str_lit(ch[-1]),))

    def between(self, meta, ch):
        return self._pred("between", meta, ch, tuple(c for c in ch[1:] if isinstance(c, ast.Node)))

    def is_null(self, meta, ch):
        return self._pred("is_null", meta, ch, ())

    def sum_expr(self, meta, ch):
        return self._fold_binops(ch)

    def product(self, meta, ch):
        return self._fold_binops(ch)

    def _fold_binops(self, ch: list) -> ast.Node:
        node = ch[0]
        for op, right in zip(ch[1::2], ch[2::2], strict=True):
            node = ast.BinOp(str(op), node, right, span=(node.span[0], right.span[1]))
        return node

    def neg(self, meta, ch):
        return ast.Neg(ch[0], span=_span(meta))

    def column(self, meta, ch):
        return ast.Name(tuple(_name(t) for t in ch), span=_span(meta))

    def call(self, meta, ch):
        name = ch[0]
        star = any(isinstance(c, Token) and c.type == "STAR" for c in ch[1:])
        args = tuple(c for c in ch[1:] if isinstance(c, ast.Node))
        return ast.Call(name.lower(), args, star, span=_span(meta))

    def func_name(self, meta, ch):
        return str(ch[0])

    def _str_lit(self, tok: Token) -> ast.Literal:
        return ast.Literal(_string(tok), "string", span=_span(tok))

    def string(self, meta, ch):
        return self._str_lit(ch[0])

    def number(self, meta, ch):
        s = str(ch[0])
        value = float(s) if re.search(r"[.eE]", s) else int(s)
        return ast.Literal(value, "number", span=_span(meta))

    def true(self, meta, ch):
        return ast.Literal(True, "bool", span=_span(meta))

    def false(self, meta, ch):
        return ast.Literal(False, "bool", span=_span(meta))

    def null(self, meta, ch):
        return ast.Literal(None, "null", span=_span(meta))

    def today(self, meta, ch):
        return ast.Literal(0, "day", span=_span(meta))

    def yesterday(self, meta, ch):
        return ast.Literal(-1, "day", span=_span(meta))

    def now(self, meta, ch):
        return ast.Literal(None, "now", span=_span(meta))

    def duration_value(self, meta, ch):
        return ast.Literal(self._duration(ch[0]), "duration", span=_span(meta))

    # durations stay (amount, unit, span) until a clause turns them into timedelta
    def short_duration(self, meta, ch):
        m = re.fullmatch(r"(\d+)([a-z]+)", str(ch[0]))
        assert m is not None  # the DURATION terminal guarantees the shape
        return (int(m.group(1)), m.group(2), _span(meta))

    def long_duration(self, meta, ch):
        nums = [c for c in ch if isinstance(c, Token) and c.type in ("INT", "STRING")]
        raw = str(nums[0])
        amount_text = _string(nums[0]) if nums[0].type == "STRING" else raw
        if not amount_text.strip().isdigit():
            raise self._fail(f"interval amount must be a whole number, not {amount_text!r}", _span(nums[0]))
        return (int(amount_text), ch[-1], _span(meta))

    def unit(self, meta, ch):
        return str(ch[0]).lower().rstrip("s") or "s"

    def _duration(self, d: tuple) -> timedelta:
        amount, unit, span = d
        per = _SHORT_UNITS.get(unit) or LONG_UNITS.get(unit)
        if per is None:
            raise self._fail(f"'{unit}' is not a fixed duration; use days or weeks", span)
        if amount == 0:
            raise self._fail("a duration must be longer than zero", span)
        try:
            return amount * per
        except OverflowError:
            raise self._fail("duration too large", span) from None
