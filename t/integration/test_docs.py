"""
The manual and the code stay together.

Every directive declared in a `rp_command_t` table under src/ has an entry in
man/rampart.conf.5 with the contexts the table allows, every entry names a
directive the code knows, every variable a module registers (its rp_var_def_t table)
is listed under VARIABLES (and nothing else is), the man pages render without warnings, the
configurations the manual shows pass `rampart -t`, and no sentence of the pages
calls a directive, or a parameter of `listen`, missing ("not supported yet", "not
implemented", "later", ...) when the code has it.

The conventions the manual follows are written at the top of man/rampart.conf.5:
a directive entry is a `.SS NAME` heading in a section whose title ends in
"DIRECTIVES", followed by no-fill `Syntax:`, `Default:` and `Context:` lines;
a variable is a `.TP` tag (`.B $name`, or `.BI $prefix_ name`) under VARIABLES.

Run with /usr/bin/python3 -m pytest. RAMPART_SRC may point at the source tree
(default: two levels above this file); RAMPART_BIN at the binary for the
example check (default: rampart at the top of the source tree).
"""
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

SRC = Path(os.environ.get("RAMPART_SRC") or Path(__file__).resolve().parents[2])
CONF_MAN = SRC / "man" / "rampart.conf.5"
MAN_PAGES = [SRC / "man" / "rampart.8", CONF_MAN]

# --- the C side -------------------------------------------------------------


def strip_c_comments(text):
    """Removes /* */ and // comments, leaving string and char literals intact."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
            out.append(" ")
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        else:
            out.append(c)
            i += 1
    return "".join(out)


def split_top(text, sep):
    """Splits text at sep characters that are outside (), {} and string literals."""
    parts, depth, cur, i = [], 0, [], 0
    while i < len(text):
        c = text[i]
        if c == '"':
            j = i + 1
            while j < len(text) and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            cur.append(text[i : j + 1])
            i = j + 1
            continue
        if c in "({":
            depth += 1
        elif c in ")}":
            depth -= 1
        if c == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur))
    return [p.strip() for p in parts]


def braced_body(text, open_at):
    """The text between the "{" at open_at and its matching "}"."""
    depth, i = 0, open_at
    while i < len(text):
        c = text[i]
        if c == '"':
            i += 1
            while text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[open_at + 1 : i]
        i += 1
    raise AssertionError("unbalanced braces in a directive table")


def context_bits():
    """RP_CTX_* names and values, from src/conf/conf.h."""
    text = strip_c_comments((SRC / "src/conf/conf.h").read_text())
    bits = {
        m.group(1): int(m.group(2), 16)
        for m in re.finditer(r"#define\s+(RP_CTX_\w+)\s+0x([0-9a-fA-F]+)u?\b", text)
    }
    assert "RP_CTX_MAIN" in bits and "RP_CTX_ANY" in bits, "RP_CTX_* not found in conf.h"
    return bits


def context_names(bits):
    """Bit value -> context name as the manual spells it ("main", "http", ...)."""
    return {v: k[len("RP_CTX_") :].lower() for k, v in bits.items() if k != "RP_CTX_ANY"}


def eval_ctx(expr, macros, bits, where):
    """Evaluates a table's ctx field: RP_CTX_* names, local macros, "|"."""
    value = 0
    for tok in expr.replace("(", " ").replace(")", " ").split("|"):
        tok = tok.strip()
        if tok in bits:
            value |= bits[tok]
        elif tok in macros:
            value |= eval_ctx(macros[tok], macros, bits, where)
        else:
            raise AssertionError(f"{where}: cannot resolve context \"{tok}\"")
    return value


def code_directives():
    """{name: set of context names} over every rp_command_t table under src/."""
    bits = context_bits()
    names_of = context_names(bits)
    found = {}
    for path in sorted(SRC.glob("src/**/*.c")):
        text = strip_c_comments(path.read_text())
        rel = path.relative_to(SRC)
        macros = dict(re.findall(r"#define\s+(\w+)\s+(\([^\n]*\)|RP_CTX_\w+)", text))
        for m in re.finditer(r"\brp_command_t\s+\w+\s*\[\s*\]\s*=\s*\{", text):
            body = braced_body(text, m.end() - 1)
            entries = 0
            for entry in split_top(body, ","):
                if not entry.startswith("{"):
                    continue
                fields = split_top(entry[1:-1], ",")
                if fields[0] == "NULL":
                    continue
                name = re.fullmatch(r'"([^"]+)"', fields[0])
                assert name, f"{rel}: directive entry without a string name: {entry[:60]}"
                ctx = eval_ctx(fields[1], macros, bits, f"{rel}: {name.group(1)}")
                contexts = {n for b, n in names_of.items() if ctx & b}
                found.setdefault(name.group(1), set()).update(contexts)
                entries += 1
            assert entries, f"{rel}: a directive table with no entries the test could read"
    assert "include" in found and "listen" in found, "the directive tables were not found"
    for contexts in found.values():
        # nginx's manual words: "if" (both kinds of if block), "if in location"
        ifs = contexts & {"sif", "lif"}
        contexts -= ifs
        if ifs:
            contexts.add("if" if len(ifs) == 2 else
                         "if in location" if "lif" in ifs else "if in server")
    return found


def code_variables():
    """[(name, is_prefix)] from every rp_var_def_t table under src/ (modules register
    their variables in such tables)."""
    out = []
    for path in sorted(SRC.glob("src/**/*.c")):
        text = strip_c_comments(path.read_text())
        rel = path.relative_to(SRC)
        for m in re.finditer(r"\brp_var_def_t\s+\w+\s*\[\s*\]\s*=\s*\{", text):
            body = braced_body(text, m.end() - 1)
            for entry in split_top(body, ","):
                if not entry.startswith("{"):
                    continue
                fields = split_top(entry[1:-1], ",")
                if fields[0] == "NULL":
                    continue
                name = re.fullmatch(r'"([^"]+)"', fields[0])
                assert name and len(fields) >= 4, f"{rel}: unreadable variable entry: {entry}"
                out.append((name.group(1), "RP_VAR_PREFIX" in fields[3]))
    assert out, "no variable tables found under src/"
    return out


# --- the manual side --------------------------------------------------------


def roff_text(s):
    """Plain text of a roff fragment: font changes and common escapes removed."""
    s = re.sub(r"\\f(\[[^\]]*\]|\(..|.)", "", s)
    for esc, plain in (("\\e", "\\"), ("\\-", "-"), ("\\&", ""), ("\\(dq", '"'),
                       ("\\(aq", "'"), ("\\(em", "-"), ("\\ ", " ")):
        s = s.replace(esc, plain)
    return s


def macro_args(line):
    """The arguments of a macro line such as .BI "$http_" name, unquoted."""
    return shlex.split(line.split(None, 1)[1], posix=True) if " " in line else []


def man_sections(path):
    """[(section title, subsection title or None, [lines])] in file order."""
    out, sh, ss, lines = [], None, None, []
    for line in path.read_text().split("\n"):
        if line.startswith(".SH") or line.startswith(".SS"):
            out.append((sh, ss, lines))
            title = " ".join(macro_args(line))
            if line.startswith(".SH"):
                sh, ss = title, None
            else:
                ss = title
            lines = []
        else:
            lines.append(line)
    out.append((sh, ss, lines))
    return out


def man_directive_entries():
    """[(name, lines)] for every .SS entry in a *DIRECTIVES section."""
    return [
        (ss, lines)
        for sh, ss, lines in man_sections(CONF_MAN)
        if sh and sh.endswith("DIRECTIVES") and ss is not None
    ]


def entry_field(lines, field):
    for line in lines:
        text = roff_text(line)
        if text.startswith(field + ":"):
            return text[len(field) + 1 :].strip()
    return None


def man_variables():
    """Variable names as tagged in VARIABLES: "$host", "$http_name", ..."""
    lines = []
    for sh, _, sec in man_sections(CONF_MAN):
        if sh == "VARIABLES":
            lines += sec
    names = []
    for i, line in enumerate(lines):
        if line.strip() == ".TP" and i + 1 < len(lines):
            tag = lines[i + 1]
            assert tag.startswith((".B ", ".BI ")), f"VARIABLES: unexpected tag {tag!r}"
            names.append(roff_text("".join(macro_args(tag))))
    assert names, "no variables found in the VARIABLES section"
    return names


# --- claims that something is missing ----------------------------------------
#
# A manual written while features were landing says "not supported yet" about
# things that exist by now. The check below reads every sentence of the pages
# that claims something is missing (not supported, not implemented, an error,
# "later", "rampart has no ..."), works out what the sentence says is missing,
# and compares that with the code: a directive of the tables, or a parameter
# that set_listen accepts. It reads a claim's subject the way the manual writes
# it: a bold or quoted name ("the http2 parameter", "listen ... quic", "http2 on
# listen"), or HTTP/2, TLS or gRPC written out, which stand for what enables them.

OPEN, CLOSE = "\x01", "\x02"  # around a name: bold text or a "quoted" word

# Protocols written out in prose, and what turns each on.
FEATURE_WORDS = {
    "HTTP/2": ("param", "listen", "http2"),
    "TLS": ("param", "listen", "ssl"),
    "SSL": ("param", "listen", "ssl"),
    "gRPC": ("directive", "grpc_pass"),
}
AFTER_PREPOSITION = (r"\b(?:in|on|of|for|over|with|to|from|by|under|inside|through|via|without)"
                     r"(?:\s+(?:a|an|the))?\s*$")


def listen_parameters():
    """The parameters set_listen in src/http/core_module.c accepts ("ssl", "backlog=", ...)."""
    text = strip_c_comments((SRC / "src/http/core_module.c").read_text())
    m = re.search(r"\bset_listen\s*\([^)]*\)\s*\{", text)
    assert m, "set_listen not found in src/http/core_module.c"
    body = braced_body(text, m.end() - 1)
    params = set(re.findall(r'\bstrn?cmp\s*\(\s*\w+\s*,\s*"([^"]+)"', body))
    assert "ssl" in params, "could not read the parameters set_listen accepts"
    return params


def _marked(s):
    """Plain text of a roff fragment, with "quoted" words marked as names."""
    s = roff_text(s)
    return re.sub(r'"([^"\s]+)"', lambda m: OPEN + m.group(1) + CLOSE, s)


def _inline(line):
    """A text line: \\fB...\\fR spans become names, the rest plain text."""
    out, pos = [], 0
    for m in re.finditer(r"\\fB(.*?)(?:\\f[RPI]|$)", line):
        out.append(_marked(line[pos : m.start()]))
        out.append(OPEN + roff_text(m.group(1)) + CLOSE)
        pos = m.end()
    out.append(_marked(line[pos:]))
    return "".join(out)


def _font_macro(line):
    """.B, .BR, .RB, .BI, .IB, .I, .IR, .RI: bold arguments become names."""
    macro, args = line.split(None, 1)[0][1:], macro_args(line)
    if macro == "B":
        return OPEN + roff_text(" ".join(args)) + CLOSE if args else ""
    if macro == "I":
        return roff_text(" ".join(args))
    fonts = macro * len(args)
    return "".join(OPEN + roff_text(a) + CLOSE if f == "B" else _marked(a)
                   for f, a in zip(fonts, args))


def man_paragraphs(text):
    """[(entry, paragraph text)]: running text with names marked, entry being the
    .SS heading it stands under (None before the first). Syntax blocks are left
    out; each line of an example is a paragraph of its own."""
    out, cur, entry, mode = [], [], None, None

    def flush():
        if cur:
            out.append((entry, " ".join(cur)))
            cur.clear()

    for line in text.split("\n"):
        if mode == "nf":
            mode = None if line.startswith(".fi") else mode
            continue
        if mode == "ex":
            if line.startswith(".EE"):
                mode = None
            else:
                out.append((entry, _inline(line)))
            continue
        if line.startswith('.\\"'):
            continue
        if line.startswith("."):
            macro = line.split(None, 1)[0]
            if macro in (".B", ".I", ".BR", ".RB", ".BI", ".IB", ".IR", ".RI"):
                cur.append(_font_macro(line))
                continue
            flush()
            if macro == ".nf":
                mode = "nf"
            elif macro == ".EX":
                mode = "ex"
            elif macro == ".SH":
                entry = None
            elif macro == ".SS":
                entry = " ".join(macro_args(line))
            continue
        cur.append(_inline(line))
    flush()
    return out


def _outside_names(s):
    """For each character of s, whether it is outside a marked name."""
    flags, inside = [], False
    for c in s:
        if c == OPEN:
            inside = True
        flags.append(not inside)
        if c == CLOSE:
            inside = False
    return flags


def _split_outside(s, pattern):
    """s split at matches of pattern that fall outside names."""
    outside, parts, pos = _outside_names(s), [], 0
    for m in re.finditer(pattern, s):
        if outside[m.start()] and m.start() >= pos:
            parts.append(s[pos : m.start()])
            pos = m.end()
    parts.append(s[pos:])
    return parts


def _clauses(sentence):
    """The sentence's clauses: parenthesized asides are clauses of their own,
    and ";" ends one."""
    asides, s = [], sentence
    while True:
        outside = _outside_names(s)
        m = next((m for m in re.finditer(r"\(([^()]*)\)", s) if outside[m.start()]), None)
        if m is None:
            break
        asides.append(m.group(1))
        s = s[: m.start()] + " " + s[m.end() :]
    return [c for part in [s] + asides for c in _split_outside(part, r";")]


NAME = OPEN + "([^" + CLOSE + "]*)" + CLOSE
FEATURE = r"(?<![\w/])(" + "|".join(re.escape(w) for w in FEATURE_WORDS) + r")(?![\w/.])"
# Claims whose subject comes before them ("X is not supported yet").
CLAIM_BEFORE = re.compile(
    r"\bnot\s+(?:yet\s+)?(?:supported|implemented|available)\b|\bunsupported\b"
    r"|\bdoes\s+not\s+exist\b|\bdo\s+not\s+exist\b"
    r"|\b(?:not|no|nothing|none)\b(?:\s+\S+){0,4}?\s+yet\b"
    r"|(?<!\d and )(?<!\d or )\blater\b",  # not "nginx 1.19.7 and later"
    re.I)
CLAIM_ERROR = re.compile(r"\b(?:is|are)\s+(?:an?|a\s+configuration)\s+error\b", re.I)
# Claims whose subject comes after them ("Not implemented yet: X, Y").
CLAIM_LIST = re.compile(
    r"^\s*not\s+(?:yet\s+)?(?:supported|implemented)(?:\s+yet)?\b[^:]*:(.*)$", re.I)
CLAIM_NONE = re.compile(
    r"(?:\b(?:rampart\s+(?:has|takes|knows)|there\s+(?:is|are))\s+no|^\s*no)\s+"
    r"(" + NAME + r"(?:\s*(?:,|\bor\b|\band\b|\bnor\b)\s*" + NAME + r")*)", re.I)


# Words that may stand in the subject of a claim besides the names themselves:
# "the http2 parameter is", "TLS and HTTP/2 are", "http2 on listen", "the old X directive".
SUBJECT_WORDS = {"and", "or", "nor", "the", "a", "an", "nginx's", "old", "is", "are", "was",
                 "were", "be", "does", "do", "parameter", "parameters", "directive",
                 "directives", "on", "of", "in", "for", "over", "with", "without", ","}


def _subject_span(prefix):
    """The end of prefix that a claim after it is about: the names (and the words
    of SUBJECT_WORDS around them) just before it, back to the first other word."""
    start = len(prefix)
    tokens = list(re.finditer(NAME + r"|[^\s,:" + OPEN + r"]+|[,:]", prefix))
    for m in reversed(tokens):
        tok = m.group(0)
        if not (tok.startswith(OPEN) or tok in FEATURE_WORDS or tok.lower() in SUBJECT_WORDS):
            break
        start = m.start()
    return prefix[start:]


def _subjects(span, sentence, entry, directives):
    """What span names as missing: [("directive", d) | ("param", d, p) | ("either", n)].
    A name after a preposition only says where ("variables in access_log"), and a
    name of several words is a particular use ("proxy_set_header Connection
    upgrade"), not something that could be missing as a whole."""
    out, qualifiers = [], set()
    for m in re.finditer(NAME + r"\s+(?:on|of|in|for)\s+" + NAME, span):
        out.append(("param", m.group(2).split()[0], m.group(1)))
        qualifiers.update((m.start(), m.start(2) - 1))
    for m in re.finditer(NAME, span):
        if m.start() in qualifiers:
            continue
        name, before, after = m.group(1).strip(), span[: m.start()], span[m.end() :]
        if not name or re.search(AFTER_PREPOSITION, before, re.I):
            continue
        dots = re.fullmatch(r"(\S+)\s+\.\.\.\s+(\S+)", name)
        if dots:
            out.append(("param", dots.group(1), dots.group(2)))
        elif re.match(r"\s*parameters?\b", after):
            owner = next((n.split()[0] for n in re.findall(NAME, sentence)
                          if n.split() and n.split()[0] in directives and n != name), entry)
            out.append(("param", owner, name))
        elif re.match(r"\s*directives?\b", after):
            out.append(("directive", name.split()[0]))
        elif " " not in name:
            out.append(("either", name))
    plain = re.sub(NAME, lambda m: " " * len(m.group(0)), span)
    for m in re.finditer(FEATURE, plain):
        if not re.search(AFTER_PREPOSITION, plain[: m.start()], re.I):
            out.append(FEATURE_WORDS[m.group(1)])
    return out


def _list_subjects(items, sentence, entry, directives):
    """What a list after "Not implemented yet:" names: the head of each item that
    begins with a name ("http2 on listen", "the old ssl on directive")."""
    out = []
    for item in _split_outside(items, r",|\band\b|\bor\b"):
        item = re.sub(r"^\s*(?:(?:the|a|an|old|nginx's)\s+)*", "", item, flags=re.I)
        if re.match(NAME, item) or re.match(FEATURE, item):
            head = re.match(r"(?:" + NAME + r"|\S+)(?:\s+(?:on|of|in|for)\s+" + NAME
                            + r"|\s+(?:parameters?|directives?)\b)?", item)
            out += _subjects(head.group(0), sentence, entry, directives)
    return out


def _code_has(subject, directives, listen_params):
    """Whether the code has what subject names, so that a claim it is missing is false.
    Only listen's parameters are known; a parameter of another directive never is."""
    params = {p.rstrip("=") for p in listen_params}
    kind, *rest = subject
    if kind == "directive":
        return rest[0] in directives
    if kind == "param":
        return rest[0] == "listen" and rest[1].rstrip("=") in params
    return rest[0] in directives or rest[0].rstrip("=") in params


def _describe(subject):
    kind, *rest = subject
    if kind == "param":
        return f'the "{rest[1]}" parameter of "{rest[0]}"'
    return f'"{rest[0]}"'


def absence_claims(text, directives):
    """[(sentence, subject)] for every sentence of a man page's text that calls
    something missing, subject being what it names (see _subjects)."""
    found = []
    for entry, para in man_paragraphs(text):
        for sentence in _split_outside(para, r"(?<=[.!?])\s+(?=\S)"):
            subjects = []
            for clause in _clauses(sentence):
                m = CLAIM_LIST.match(clause)
                if m:
                    subjects += _list_subjects(m.group(1), sentence, entry, directives)
                for m in CLAIM_NONE.finditer(clause):
                    subjects += [("either", n) for n in re.findall(NAME, m.group(1))
                                 if " " not in n]
                for claim in (CLAIM_BEFORE, CLAIM_ERROR):
                    m = claim.search(clause)
                    if m and not CLAIM_LIST.match(clause):
                        span = _subject_span(clause[: m.start()])
                        subjects += _subjects(span, sentence, entry, directives)
            plain = sentence.replace(OPEN, "").replace(CLOSE, "").strip()
            found += [(plain, s) for s in subjects]
    return found


def false_absence_claims(text, directives, listen_params):
    """The absence_claims of text whose subject the code has."""
    return [(sentence, subject) for sentence, subject in absence_claims(text, directives)
            if _code_has(subject, directives, listen_params)]


# --- scenarios --------------------------------------------------------------


def test_every_directive_in_the_code_has_a_man_entry():
    documented = {name for name, _ in man_directive_entries()}
    missing = sorted(set(code_directives()) - documented)
    assert not missing, f"directives without a .SS entry in {CONF_MAN.name}: {missing}"


def test_every_directive_entry_names_a_directive_in_the_code():
    known = code_directives()
    unknown = sorted({name for name, _ in man_directive_entries()} - set(known))
    assert not unknown, f"entries in {CONF_MAN.name} for directives the code lacks: {unknown}"


def test_directive_entries_are_a_bare_name_with_syntax_default_and_context():
    bad = []
    for name, lines in man_directive_entries():
        if not re.fullmatch(r"[a-z0-9_]+", name):
            bad.append(f"{name!r}: the heading must be the bare directive name")
            continue
        syntax = entry_field(lines, "Syntax")
        if syntax is None or not syntax.startswith(name):
            bad.append(f"{name}: no \"Syntax: {name} ...\" line")
        if entry_field(lines, "Default") is None:
            bad.append(f"{name}: no \"Default:\" line")
        if entry_field(lines, "Context") is None:
            bad.append(f"{name}: no \"Context:\" line")
    assert not bad, "\n".join(bad)


def test_directive_entries_state_the_contexts_the_code_allows():
    all_contexts = set(context_names(context_bits()).values())
    documented = {}
    for name, lines in man_directive_entries():
        field = entry_field(lines, "Context") or ""
        contexts = {c.strip() for c in field.split(",") if c.strip()}
        if contexts == {"any"}:
            contexts = (set(all_contexts) - {"sif", "lif"}) | {"if"}
        documented.setdefault(name, set()).update(contexts)
    wrong = [
        f"{name}: code allows {sorted(ctx)}, manual says {sorted(documented[name])}"
        for name, ctx in sorted(code_directives().items())
        if name in documented and documented[name] != ctx
    ]
    assert not wrong, "\n".join(wrong)


def test_every_variable_in_the_code_is_documented():
    documented = man_variables()
    missing = []
    for name, is_prefix in code_variables():
        if is_prefix:
            ok = any(d.startswith("$" + name) and len(d) > len(name) + 1 for d in documented)
        else:
            ok = "$" + name in documented
        if not ok:
            missing.append("$" + name + ("NAME" if is_prefix else ""))
    assert not missing, f"variables missing from VARIABLES in {CONF_MAN.name}: {missing}"


def test_every_documented_variable_exists_in_the_code():
    table = code_variables()
    unknown = []
    for doc in man_variables():
        bare = doc[1:]
        if not any(
            (bare.startswith(name) and len(bare) > len(name)) if is_prefix else bare == name
            for name, is_prefix in table
        ):
            unknown.append(doc)
    assert not unknown, f"VARIABLES lists variables the code lacks: {unknown}"


def test_man_pages_call_nothing_missing_that_the_code_has():
    directives, params = set(code_directives()), listen_parameters()
    wrong = [
        f"{page.name}: {_describe(subject)} exists, but: {sentence}"
        for page in MAN_PAGES
        for sentence, subject in false_absence_claims(page.read_text(), directives, params)
    ]
    assert not wrong, "the manual calls missing what the code has:\n" + "\n".join(wrong)


# The check above, on sentences of its own: the directives and listen parameters
# these pretend the code has, and (entry, roff text) of claims it must flag
# because they name one of them, and of true claims it must leave alone.
SAMPLE_DIRECTIVES = {"listen", "proxy_pass", "grpc_pass", "events", "access_log",
                     "ssl_verify_client", "ssl_client_certificate", "keepalive_timeout",
                     "proxy_set_header"}
SAMPLE_LISTEN_PARAMS = {"default_server", "ssl", "http2", "backlog="}
FALSE_CLAIMS = {
    "parameter_in_its_entry": ("listen", ".PP\nThe\n.B http2\nparameter is not supported yet."),
    "quoted_in_an_error_example":
        (None, '.EX\nconf/rampart.conf:14: "listen": the "ssl" parameter is not supported yet\n.EE'),
    "protocols_written_out": (None, "TLS and HTTP/2 are not supported yet."),
    "listed_as_not_implemented":
        (None, "Not implemented yet, among others: HTTP/2\n.RB ( http2\non\n.BR listen ),\n"
               "named locations,\n.BR if ."),
    "parameter_on_its_directive":
        (None, "Not supported yet:\n.B backlog=\non\n.BR listen ."),
    "directive_and_parameter_with_dots": (None, '.B "listen ... ssl"\nis not supported.'),
    "now_and_later": (None, "HTTP/1 now, HTTP/2 later."),
    "directive_not_implemented": (None, ".B proxy_pass\nis not implemented."),
    "rampart_has_no": (None, "rampart has no\n.BR grpc_pass ."),
    "an_error_by_itself": ("listen", "The\n.B http2\nparameter is an error."),
}
TRUE_CLAIMS = {
    "parameter_with_dots": (None, '.B "listen ... quic"\nis not supported.'),
    "parameter_in_its_entry": ("listen", "The\n.B quic\nparameter is not supported."),
    "parameter_of_another_directive":
        ("access_log", "Not supported yet: variables in\n.IR path ,\n.B syslog:\n"
                       "destinations and the\n.B gzip\nparameter."),
    "variables_in_a_directive": (None, "Variables in\n.B proxy_pass\nare not supported."),
    "a_second_block": (None, "A second\n.B events\nblock is an error."),
    "one_directive_without_another":
        (None, ".B \"ssl_verify_client on\"\nwithout an\n.B ssl_client_certificate\n"
               "is an error."),
    "one_use_of_a_directive":
        (None, '.B "proxy_set_header Connection upgrade"\nis a configuration error.'),
    "feature_over_a_protocol": (None, "WebSocket over HTTP/2 is not implemented yet."),
    "nginx_version_and_later":
        (None, "An idle connection closes after\n.BR keepalive_timeout ,\n"
               "as in nginx 1.19.7 and later."),
    "a_directive_and_something_else":
        (None, "Without\n.BR ssl ,\nit speaks HTTP/1.x; the\n.B \"Upgrade: h2c\"\n"
               "dance is not supported."),
}


def _sample(entry, text):
    return (f".SS {entry}\n" if entry else "") + text + "\n"


@pytest.mark.parametrize("entry,text", FALSE_CLAIMS.values(), ids=FALSE_CLAIMS.keys())
def test_missing_check_flags_a_claim_that_something_the_code_has_is_missing(entry, text):
    assert false_absence_claims(_sample(entry, text), SAMPLE_DIRECTIVES, SAMPLE_LISTEN_PARAMS)


@pytest.mark.parametrize("entry,text", TRUE_CLAIMS.values(), ids=TRUE_CLAIMS.keys())
def test_missing_check_leaves_alone_a_claim_about_what_the_code_lacks(entry, text):
    claims = absence_claims(_sample(entry, text), SAMPLE_DIRECTIVES)
    assert not false_absence_claims(_sample(entry, text), SAMPLE_DIRECTIVES,
                                    SAMPLE_LISTEN_PARAMS), claims


def _render_cmd(tool, page):
    if tool == "man":
        return ["man", "--warnings", "-l", "-E", "UTF-8", str(page)]
    return ["groff", "-man", "-z", "-ww", str(page)]


@pytest.mark.parametrize("tool", ["man", "groff"])
@pytest.mark.parametrize("page", MAN_PAGES, ids=lambda p: p.name)
def test_man_page_renders_without_warnings(tool, page):
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed; nothing to render the page with")
    env = dict(os.environ, MANWIDTH="80", PAGER="cat", MANPAGER="cat", LC_ALL="C.UTF-8")
    run = subprocess.run(_render_cmd(tool, page), capture_output=True, text=True, env=env,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stderr.strip() == "", f"{tool} warns about {page.name}:\n{run.stderr}"


def marked_examples():
    """pytest params (kind, text) of every .EX block after a '.\\" example: KIND' line."""
    lines = CONF_MAN.read_text().split("\n")
    out = []
    for i, line in enumerate(lines):
        m = re.fullmatch(r'\.\\" example: (main|server)', line)
        if not m:
            continue
        start = lines.index(".EX", i) + 1
        end = lines.index(".EE", start)
        text = "\n".join(roff_text(l) for l in lines[start:end]) + "\n"
        out.append(pytest.param(m.group(1), text, id=f"line{i + 1}-{m.group(1)}"))
    assert out, "no marked examples in the manual"
    return out


def rampart_bin():
    path = os.environ.get("RAMPART_BIN") or str(SRC / "rampart")
    return path if os.access(path, os.X_OK) else None


@pytest.mark.parametrize("kind,text", marked_examples())
def test_configuration_examples_in_the_manual_pass_rampart_t(kind, text, tmp_path):
    binary = rampart_bin()
    if binary is None:
        pytest.skip("no rampart binary (build it, or set RAMPART_BIN)")
    if kind == "server":
        text = "http {\nserver {\n" + text + "}\n}\n"
    (tmp_path / "conf.d").mkdir()  # the examples include conf.d/*.conf, which must exist
    conf = tmp_path / "example.conf"
    conf.write_text(text)
    run = subprocess.run([binary, "-t", "-q", "-p", str(tmp_path), "-c", str(conf)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, f"this {kind} example fails rampart -t:\n{text}\n{run.stderr}"
