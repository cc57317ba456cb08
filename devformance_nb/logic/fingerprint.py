"""SQL fingerprints: one normalised text per statement shape, and its short hash.

``fingerprint`` turns ``SELECT * FROM t WHERE id = 42`` and ``... id = 7`` into the same
``SELECT * FROM t WHERE id = ?``. It is a single-pass regex tokenizer, linear in the input
and never raising: the parent fingerprints every captured statement, so it must be fast
(results are cached by raw text) and must survive whatever the children recorded.

What a fingerprint is (its type, tables and pretty text) is ``statementinfo``'s.
"""

from __future__ import annotations

import hashlib
import re

#: statements longer than this are fingerprinted without caching (a huge text is rarely repeated
#: and would pin megabytes in the cache)
CACHE_MAX_CHARS = 20_000
#: the cache is emptied when it holds this many texts, or this many characters of them
CACHE_MAX_ENTRIES = 32_768
CACHE_MAX_TOTAL_CHARS = 32_000_000


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_KEYWORDS = _words(
    """
    ABORT ADD ALL ALTER ANALYZE AND ANY ARRAY AS ASC AUTOINCREMENT BEGIN BETWEEN BIGINT BOOLEAN BY
    CASCADE CASE CAST CHECK COLLATE COLUMN COMMIT CONFLICT CONSTRAINT CREATE CROSS CURRENT_DATE
    CURRENT_TIME CURRENT_TIMESTAMP DECIMAL DEFAULT DEFERRED DELETE DESC DISTINCT DO DROP DUPLICATE
    ELSE END ESCAPE EXCEPT EXCLUSIVE EXISTS EXPLAIN FALSE FETCH FILTER FIRST FOR FOREIGN FROM FULL
    GLOB GROUP HAVING IF IGNORE ILIKE IMMEDIATE IN INDEX INNER INSERT INTEGER INTERSECT INTO IS
    JOIN KEY LAST LATERAL LEFT LIKE LIMIT LOCKED MATCHED MERGE NATURAL NEXT NOT NOTHING NOWAIT
    NULL NULLS NUMERIC OF OFFSET ON ONLY OR ORDER OUTER OVER PARTITION PRAGMA PRIMARY RECURSIVE
    REFERENCES REGEXP RELEASE RENAME REPLACE RESTRICT RETURNING RIGHT ROLLBACK ROW ROWS SAVEPOINT
    SELECT SET SHARE SHOW SKIP SOME START TABLE TEMP TEMPORARY THEN TIMESTAMP TO TRANSACTION
    TRIGGER TRUE TRUNCATE UNION UNIQUE UPDATE USING VACUUM VALUES VARCHAR VIEW WHEN WHERE WINDOW
    WITH WORK
    """
)
#: upper-cased like keywords and written without a space before "(" (they are function calls)
_FUNCTIONS = _words(
    """
    ABS ANY ARRAY_AGG AVG COALESCE COUNT DATE_TRUNC DATETIME GROUP_CONCAT IFNULL JSON_EXTRACT
    LENGTH LOWER MAX MIN NOW NULLIF RANK ROUND ROW_NUMBER STRFTIME STRING_AGG SUBSTR SUBSTRING
    SUM TRIM UPPER
    """
)
_KEYWORDS_ALL = _KEYWORDS | _FUNCTIONS
#: keywords that are values: a following "-1" is a binary minus, not a negative number
_VALUE_KEYWORDS = frozenset({"NULL", "CURRENT_DATE", "CURRENT_TIME", "CURRENT_TIMESTAMP"})
#: after these, "name (" is a table and its column list, not a function call
_TABLE_INTRODUCERS = frozenset({"INTO", "TABLE", "REFERENCES", "VIEW", "WITH", "RECURSIVE"})

# One alternative per token kind; order matters (comments before operators, strings before
# words so N'x' and X'ff' are literals). Words and plain punctuation, most of any statement's
# tokens, are tried first (each failed alternative costs about as much as a match): a word
# that cannot open any other kind (no digit first, and not the prefix of a literal such as
# N'x' or U&'x'), and "(),;"; a word the first alternative leaves (1abc) is the last one's.
# Strings follow standard SQL: '' escapes a quote and a
# backslash is an ordinary character (Django on SQLite emits ESCAPE '\'), except in
# PostgreSQL's E'...' strings. Every alternative that opens a quote or comment also
# matches when it is unterminated (it runs to the end), so the scan never backtracks and never
# rescans: linear in the input.
_TOKEN = re.compile(
    r"""
    \s*
  (?:
    (?P<word>(?![EeXxBbNn]'|[Uu]&')[^\W\d][\w$]*)
  | (?P<punct>[(),;])
  | (?P<comment>--[^\n]*|/\*[^*]*(?:\*(?!/)[^*]*)*(?:\*/)?)
  | (?P<str>[Ee]'[^'\\]*(?:(?:''|\\.)[^'\\]*)*'?|(?:[XxBbNn]|[Uu]&)?'[^']*(?:''[^']*)*'?)
  | (?P<qid>"[^"]*(?:""[^"]*)*"?|`[^`]*(?:``[^`]*)*`?|\[[^\]\d\s?:$%+\-'"(.][^\]]*\]?)
  | (?P<dollar>\$(?P<tag>(?:[^\W\d]\w*)?)\$(?:.*?\$(?P=tag)\$|.*))
  | (?P<ph>\?\d*|%\([^()]*\)[sbt]|%[sbt](?!\w)|:[^\W\d]\w*|:\d+|\$\d+)
  | (?P<num>0[xX][0-9a-fA-F]+(?!\w)|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?(?![\w$]))
  | (?P<word2>\w[\w$]*)
  | (?P<op>::|<=|>=|<>|!=|\|\||->>|->|=>|<<|>>|@>|<@|&&|.)
  )
    """,
    re.VERBOSE | re.DOTALL,
)
#: a generated part of a name (a hash's hex, a uuid, an object id: temporary tables such as
#: "books_new_d09c5dbfc17a"), never a plain word, a short number or a date
_GENERATED = re.compile(
    r"(?<![0-9A-Za-z])"
    r"(?:[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}"  # a uuid, hyphens and all
    r"|(?=[0-9a-fA-F]*[0-9])(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,})"
    r"(?![0-9A-Za-z])"
    # or 16+ of them after a letter, as in sqlite-utils' "t223915da89bc3b676e44862326f42616"
    r"|(?<=[g-zG-Z])(?=[0-9a-fA-F]*[0-9])(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{16,}(?![0-9A-Za-z])"
    # or an id of 10+ digits after an underscore (a Python id or hash: "lambda_8729216110816")
    r"|(?<=_)[0-9]{10,}(?![0-9A-Za-z])"
)
_CACHE: dict[str, str] = {}
_cache_chars = 0
_LITERAL_KINDS = frozenset({"str", "dollar", "ph", "num"})
_NO_SPACE_BEFORE = frozenset({",", ")", ".", ";", "::", "]"})
_NO_SPACE_AFTER = frozenset({"(", ".", "::", "["})
_SIGNS = frozenset({"-", "+"})

# Post-passes on the normalised text, where spacing is canonical. Each is deterministic (no
# nested ambiguous quantifiers), so it stays linear on a 100k-element list.
_IN_LIST = re.compile(r"(?<![\w\"`\]$])IN \((?:\?|NULL)(?:, (?:\?|NULL))*\)")
_ARRAY_LIST = re.compile(r"\bARRAY\[\?(?:, \?)*\]", re.IGNORECASE)
_ROW = r"\((?:[^()]|\([^()]*\))*\)"
_VALUES_ROWS = re.compile(rf"\bVALUES ({_ROW})(?:, {_ROW})+")


def fingerprint(sql: str) -> str:
    """The statement's shape: literals and placeholders as ``?``, lists collapsed.

    Comments are dropped; string, number, boolean, hex and blob literals and every paramstyle's
    placeholder (``?``, ``%s``, ``%(name)s``, ``:name``, ``$1``) become ``?``; ``IN (?, ?, ...)``
    becomes ``IN (...)`` and multi-row ``VALUES (...), (...)`` keeps only its first row;
    keywords are upper-cased, whitespace is normalised, and quoted identifiers (``"books"``,
    `` `books` ``, ``[books]``) are kept verbatim, except a savepoint's name (``SAVEPOINT ?``)
    and a generated part of a name (8+ hex characters with digits and letters, or a uuid, as
    in a temporary table ``"books_new_d09c5dbfc17a"``: ``"books_new_?"``; an unquoted name is
    quoted then, ``t2ca733f055947886cde0eaec6e93efaf`` -> ``"t?"``).
    Never raises; results are cached by raw text.
    """
    if not isinstance(sql, str):
        sql = _as_text(sql)
    if len(sql) > CACHE_MAX_CHARS:
        return _safe_fingerprint(sql)
    return _cached_fingerprint(sql)


def fingerprint_hash(fp: str) -> str:
    """A short, stable hex id for a fingerprint (16 hex chars of blake2b)."""
    data = fp.encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def _as_text(value: object) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    return "" if value is None else str(value)


def _cached_fingerprint(sql: str) -> str:
    # A plain dict, emptied when full: cheaper than an LRU on a stream of mostly distinct texts,
    # and the few hot ORM texts are back in the cache moments after a reset. The character
    # count is approximate under threads, which is fine for a memory bound.
    global _cache_chars
    fp = _CACHE.get(sql)
    if fp is None:
        fp = _safe_fingerprint(sql)
        if len(_CACHE) >= CACHE_MAX_ENTRIES or _cache_chars >= CACHE_MAX_TOTAL_CHARS:
            _CACHE.clear()
            _cache_chars = 0
        _CACHE[sql] = fp
        _cache_chars += len(sql)
    return fp


def clear_cache() -> None:
    """Forget every cached fingerprint (for tests and benchmarks)."""
    global _cache_chars
    _CACHE.clear()
    _cache_chars = 0


def _safe_fingerprint(sql: str) -> str:
    try:
        return _normalise(sql)
    except Exception:  # a bug here must not lose a run: fall back to collapsed whitespace
        return " ".join(sql.split())


def _normalise(sql: str) -> str:
    if len(sql) >= _BULK_MIN_CHARS:
        sql = _first_placeholder_row(sql)
    tokens, kinds = _tokenize(sql.strip())
    while tokens and tokens[-1] == ";":
        tokens.pop()
        kinds.pop()
    _hide_savepoint_name(tokens, kinds)
    return _collapse_lists(_join(tokens, kinds))


#: statements at least this long have their placeholder-only VALUES rows cut to the first
#: before tokenizing (a bulk insert of many rows: 756,000 characters, 0.27 s to tokenize)
_BULK_MIN_CHARS = 4_096
_PLACEHOLDER_ROW = r"\(\s*(?:\?|%s)(?:\s*,\s*(?:\?|%s))*\s*\)"
_PLACEHOLDER_ROWS = re.compile(
    rf"\b(VALUES\s*{_PLACEHOLDER_ROW})(?:\s*,\s*{_PLACEHOLDER_ROW})+", re.IGNORECASE
)


def _first_placeholder_row(sql: str) -> str:
    """``VALUES (?, ?), (?, ?), ...`` -> ``VALUES (?, ?)`` in the raw text.

    The fingerprint keeps a multi-row VALUES' first row only (``_collapse_lists``); cutting
    rows of placeholders alone before tokenizing gives the same fingerprint without a token
    for each of a bulk insert's parameters. The cut text holds only placeholders, commas,
    parentheses and spaces, so it never ends or starts a string, comment or quoted name.
    """
    return _PLACEHOLDER_ROWS.sub(r"\1", sql)


#: the statements that name a savepoint, as keyword tokens before the name
_SAVEPOINT_VERBS = (
    ["SAVEPOINT"],
    ["RELEASE", "SAVEPOINT"],
    ["RELEASE"],
    ["ROLLBACK", "TO", "SAVEPOINT"],
    ["ROLLBACK", "TO"],
)


def _hide_savepoint_name(tokens: list[str], kinds: list[str]) -> None:
    """``SAVEPOINT "s1401_x1"`` -> ``SAVEPOINT ?``: libraries name savepoints per call (Django
    by thread id and a counter, SQLAlchemy by a counter), so the name is not the shape."""
    if len(tokens) < 2 or kinds[-1] not in ("word", "qid"):
        return
    if tokens[:-1] in _SAVEPOINT_VERBS:
        tokens[-1], kinds[-1] = "?", "lit"


def _tokenize(sql: str) -> tuple[list[str], list[str]]:
    """Tokens with literals as ``?`` and keywords upper-cased, and their kinds.

    Kinds: "word", "kw", "lit", "qid" (quoted identifier) or "op". This loop runs once per
    token of every distinct statement, so it is kept flat.
    """
    tokens: list[str] = []
    kinds: list[str] = []
    for match in _TOKEN.finditer(sql):
        kind = match.lastgroup or "op"
        if kind == "punct":
            tokens.append(match.group(kind))
            kinds.append("op")
        elif kind == "word" or kind == "word2":
            text = match.group(kind)
            upper = text.upper()
            if upper == "TRUE" or upper == "FALSE":
                tokens.append("?")
                kinds.append("lit")
            elif upper in _KEYWORDS_ALL:
                tokens.append(upper)
                kinds.append("kw")
            elif len(text) >= 9 and _GENERATED.search(text):
                # quoted, so that "t?" stays one token when fingerprinted again
                tokens.append(f'"{_GENERATED.sub("?", text)}"')
                kinds.append("qid")
            else:
                tokens.append(text)
                kinds.append("word")
        elif kind in _LITERAL_KINDS:
            _drop_sign(tokens, kinds)
            tokens.append("?")
            kinds.append("lit")
        elif kind == "qid":
            text = match.group(kind)
            tokens.append(_GENERATED.sub("?", text) if len(text) >= 10 else text)
            kinds.append(kind)
        elif kind != "comment":
            tokens.append(match.group(kind))
            kinds.append(kind)
    return tokens, kinds


def _drop_sign(tokens: list[str], kinds: list[str]) -> None:
    """Fold a unary sign into the literal: ``= -5`` is ``= ?`` but ``a - 5`` stays ``a - ?``."""
    if not tokens or kinds[-1] != "op" or tokens[-1] not in _SIGNS:
        return
    if len(tokens) >= 2 and _is_operand(tokens[-2], kinds[-2]):
        return
    tokens.pop()
    kinds.pop()


def _is_operand(text: str, kind: str) -> bool:
    if kind in ("word", "lit", "qid"):
        return True
    if kind == "kw":
        return text in _VALUE_KEYWORDS
    return text in (")", "]")


def _join(tokens: list[str], kinds: list[str]) -> str:
    """Tokens separated by one space, except around punctuation and in calls/subscripts."""
    if not tokens:
        return ""
    out = [tokens[0]]
    before, prev, prev_kind = "", tokens[0], kinds[0]
    for text, kind in zip(tokens[1:], kinds[1:], strict=True):
        tight = text in _NO_SPACE_BEFORE or prev in _NO_SPACE_AFTER
        if not tight and (text == "(" or text[0] == "["):
            tight = _hugs(text, prev, prev_kind, before)
        out.append(text if tight else " " + text)
        before, prev, prev_kind = prev, text, kind
    return "".join(out)


def _hugs(text: str, prev: str, prev_kind: str, before: str) -> bool:
    """True when "(" or "[" is written without a space after ``prev``."""
    if text == "(":  # "count(" and "my_func(" are calls; "INTO books (" and "IN (" are not
        if prev_kind == "kw":
            return prev in _FUNCTIONS
        return prev_kind == "word" and before not in _TABLE_INTRODUCERS
    # a subscript or ARRAY[...] hugs what it follows
    return prev_kind in ("word", "qid") or prev in (")", "]", "ARRAY")


def _collapse_lists(text: str) -> str:
    if "IN (" in text:
        text = _IN_LIST.sub("IN (...)", text)
    if "[" in text:
        text = _ARRAY_LIST.sub("ARRAY[...]", text)
    if "VALUES (" in text:
        text = _VALUES_ROWS.sub(r"VALUES \1", text)
    return text
