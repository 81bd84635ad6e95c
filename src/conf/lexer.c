/*
 * Configuration tokenizer. Input is a whole file in memory: configuration files
 * are small, and holding the text lets `rampart -T` print exactly what was read.
 */
#include "conf/lexer.h"
#include "core/arena.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rp_lexer_init(rp_lexer_t *lx, const char *name, const char *text, size_t len)
{
    memset(lx, 0, sizeof(*lx));
    lx->name = name;
    lx->text = text;
    lx->len = len;
    lx->line = 1;
    lx->buf_cap = 64;
    lx->buf = rp_xmalloc(lx->buf_cap);
}

void rp_lexer_free(rp_lexer_t *lx)
{
    free(lx->buf);
    lx->buf = NULL;
}

static void put(rp_lexer_t *lx, char c)
{
    if (lx->buf_len + 2 > lx->buf_cap) {
        lx->buf_cap *= 2;
        lx->buf = rp_xrealloc(lx->buf, lx->buf_cap);
    }
    lx->buf[lx->buf_len++] = c;
    lx->buf[lx->buf_len] = '\0';
}

static rp_tok_type_t fail(rp_lexer_t *lx, const char *fmt, int c)
{
    snprintf(lx->errbuf, sizeof(lx->errbuf), fmt, c);
    lx->error = lx->errbuf;
    return RP_TOK_ERROR;
}

static int is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

static int ends_word(int c)
{
    return is_space(c) || c == ';' || c == '{' || c == '}';
}

/*
 * Copies the escape that starts at the backslash at lx->pos - 1. Returns -1 for
 * a NUL byte, which no escape may smuggle into a word.
 */
static int escape(rp_lexer_t *lx)
{
    if (lx->pos >= lx->len) {
        put(lx, '\\');
        return 0;
    }
    char c = lx->text[lx->pos++];
    switch (c) {
    case '\0':
        return -1;
    case '"':
    case '\'':
    case '\\':
        put(lx, c);
        break;
    case 'n':
        put(lx, '\n');
        break;
    case 'r':
        put(lx, '\r');
        break;
    case 't':
        put(lx, '\t');
        break;
    case '\n':
        lx->line++;
        put(lx, '\\');
        put(lx, c);
        break;
    default:
        put(lx, '\\');
        put(lx, c);
    }
    return 0;
}

rp_tok_type_t rp_lexer_next(rp_lexer_t *lx)
{
    lx->buf_len = 0;
    lx->buf[0] = '\0';
    lx->tok_quoted = 0;
    lx->error = NULL;

    for (;;) {
        if (lx->pos >= lx->len) {
            lx->tok_line = lx->line;
            return RP_TOK_EOF;
        }
        char c = lx->text[lx->pos];
        if (c == '\n') {
            lx->line++;
            lx->pos++;
        } else if (is_space(c)) {
            lx->pos++;
        } else if (c == '#') {
            while (lx->pos < lx->len && lx->text[lx->pos] != '\n')
                lx->pos++;
        } else {
            break;
        }
    }

    lx->tok_line = lx->line;
    char c = lx->text[lx->pos];
    if (c == ';' || c == '{' || c == '}') {
        lx->pos++;
        return c == ';' ? RP_TOK_SEMI : c == '{' ? RP_TOK_LBRACE : RP_TOK_RBRACE;
    }
    if (c == '\0')
        return fail(lx, "unexpected NUL byte", 0);

    if (c == '"' || c == '\'') {
        char quote = c;
        lx->pos++;
        lx->tok_quoted = 1;
        for (;;) {
            if (lx->pos >= lx->len)
                return fail(lx, "unterminated quoted string", 0);
            char d = lx->text[lx->pos++];
            if (d == quote)
                break;
            if (d == '\\') {
                if (escape(lx) != 0)
                    return fail(lx, "unexpected NUL byte", 0);
                continue;
            }
            if (d == '\0')
                return fail(lx, "unexpected NUL byte", 0);
            if (d == '\n')
                lx->line++;
            put(lx, d);
        }
        /* as nginx: ")" may follow a quoted string, closing an `if` condition */
        if (lx->pos < lx->len && !ends_word(lx->text[lx->pos]) && lx->text[lx->pos] != ')') {
            return fail(lx, "unexpected \"%c\" after a quoted string", lx->text[lx->pos]);
        }
        return RP_TOK_WORD;
    }

    while (lx->pos < lx->len) {
        char d = lx->text[lx->pos];
        if (ends_word(d))
            break;
        lx->pos++;
        if (d == '\\') {
            if (escape(lx) != 0)
                return fail(lx, "unexpected NUL byte", 0);
        } else if (d == '$' && lx->pos < lx->len && lx->text[lx->pos] == '{') {
            /* "${name}" may sit inside a word; its braces are not block braces. */
            put(lx, '$');
            while (lx->pos < lx->len && lx->text[lx->pos] != '}') {
                char e = lx->text[lx->pos++];
                if (e == '\n' || e == ';' || e == ' ')
                    return fail(lx, "unterminated \"${\" in a variable name", 0);
                if (e == '\0')
                    return fail(lx, "unexpected NUL byte", 0);
                put(lx, e);
            }
            if (lx->pos >= lx->len)
                return fail(lx, "unterminated \"${\" in a variable name", 0);
            put(lx, lx->text[lx->pos++]);
        } else if (d == '\0') {
            return fail(lx, "unexpected NUL byte", 0);
        } else {
            put(lx, d);
        }
    }
    return RP_TOK_WORD;
}

/* The level of a long bracket "[==[" starting at p (at '['), or -1 if it is not one. */
static int long_bracket(const char *p, const char *end)
{
    int level = 0;
    if (p >= end || *p != '[')
        return -1;
    p++;
    while (p < end && *p == '=') {
        level++;
        p++;
    }
    return p < end && *p == '[' ? level : -1;
}

int rp_lexer_raw_block(rp_lexer_t *lx, size_t *start, size_t *len, unsigned *line)
{
    /* Lua's own lexical rules, as far as braces go: braces inside strings, long
     * strings and comments do not count. */
    const char *t = lx->text, *end = lx->text + lx->len;
    size_t pos = lx->pos;
    int depth = 0;
    *start = pos;
    *line = lx->line;
    while (t + pos < end) {
        char c = t[pos];
        if (c == '\n') {
            lx->line++;
            pos++;
        } else if (c == '{') {
            depth++;
            pos++;
        } else if (c == '}') {
            if (depth == 0) {
                *len = pos - *start;
                lx->pos = pos + 1;
                return 0;
            }
            depth--;
            pos++;
        } else if (c == '"' || c == '\'') {
            pos++;
            while (t + pos < end && t[pos] != c) {
                if (t[pos] == '\\' && t + pos + 1 < end) {
                    if (t[pos + 1] == '\n')
                        lx->line++;
                    pos++;
                } else if (t[pos] == '\n') {
                    break; /* unfinished string: Lua reports it when it compiles */
                }
                pos++;
            }
            if (t + pos < end && t[pos] == c)
                pos++;
        } else if (c == '-' && t + pos + 1 < end && t[pos + 1] == '-') {
            pos += 2;
            int level = long_bracket(t + pos, end);
            if (level < 0) {
                while (t + pos < end && t[pos] != '\n')
                    pos++;
                continue;
            }
            goto long_string_at;
        } else if (c == '[' && long_bracket(t + pos, end) >= 0) {
        long_string_at:;
            int lv = long_bracket(t + pos, end);
            pos += (size_t)lv + 2;
            for (;;) {
                if (t + pos >= end) {
                    lx->tok_line = *line;
                    snprintf(lx->errbuf, sizeof(lx->errbuf), "unfinished long string or comment");
                    lx->error = lx->errbuf;
                    return -1;
                }
                if (t[pos] == '\n')
                    lx->line++;
                if (t[pos] == ']') {
                    int k = 0;
                    while (t + pos + 1 + k < end && t[pos + 1 + k] == '=')
                        k++;
                    if (k == lv && t + pos + 1 + k < end && t[pos + 1 + k] == ']') {
                        pos += (size_t)k + 2;
                        break;
                    }
                }
                pos++;
            }
        } else if (c == '\0') {
            lx->tok_line = lx->line;
            snprintf(lx->errbuf, sizeof(lx->errbuf), "unexpected NUL byte");
            lx->error = lx->errbuf;
            return -1;
        } else {
            pos++;
        }
    }
    lx->tok_line = *line;
    snprintf(lx->errbuf, sizeof(lx->errbuf), "unexpected end of file: missing \"}\"");
    lx->error = lx->errbuf;
    return -1;
}
