"""
The manual and the code stay together.

Every directive declared in a `rp_command_t` table under src/ has an entry in
man/rampart.conf.5 with the contexts the table allows, every entry names a
directive the code knows, every variable of src/http/variables.c is listed under
VARIABLES (and nothing else is), the man pages render without warnings, and the
configurations the manual shows pass `rampart -t`.

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
    return found


def code_variables():
    """[(name, is_prefix)] from the variable table of src/http/variables.c."""
    text = strip_c_comments((SRC / "src/http/variables.c").read_text())
    m = re.search(r"\bvar_t\s+\w+\s*\[\s*\]\s*=\s*\{", text)
    assert m, "the variable table of src/http/variables.c was not found"
    body = braced_body(text, m.end() - 1)
    out = []
    for entry in split_top(body, ","):
        if not entry.startswith("{"):
            continue
        fields = split_top(entry[1:-1], ",")
        if fields[0] == "NULL":
            continue
        name = re.fullmatch(r'"([^"]+)"', fields[0])
        assert name and fields[2] in ("0", "1"), f"unreadable variable entry: {entry}"
        out.append((name.group(1), fields[2] == "1"))
    assert out, "no variables found in src/http/variables.c"
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
            contexts = set(all_contexts)
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
