/*
 * The configuration tokenizer: what makes a word, what quotes and escapes do,
 * where comments start, how lines are counted, and which inputs it refuses.
 * Tokens are rendered as one string so a test reads like the input it describes:
 * [word], q[quoted word], ; { }, EOF, or ERROR:<line>:<message> where it stopped.
 */
#include "conf/lexer.h"
#include "unit.h"

#include <stdlib.h>
#include <string.h>

static void append(char **out, size_t *n, size_t *cap, const char *s, size_t len)
{
    if (*n + len + 1 > *cap) {
        *cap = (*n + len + 1) * 2;
        *out = realloc(*out, *cap);
    }
    memcpy(*out + *n, s, len);
    *n += len;
    (*out)[*n] = '\0';
}

/* Control bytes are spelled out so a decoded "\n" differs from a kept backslash-n. */
static void append_word(char **out, size_t *n, size_t *cap, const char *w, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        const char *s;
        switch (w[i]) {
        case '\n':
            s = "<LF>";
            break;
        case '\r':
            s = "<CR>";
            break;
        case '\t':
            s = "<TAB>";
            break;
        case '\0':
            s = "<NUL>";
            break;
        default:
            append(out, n, cap, &w[i], 1);
            continue;
        }
        append(out, n, cap, s, strlen(s));
    }
}

/* The rendering stays valid until the next call. */
static char *lex_n(const char *text, size_t len)
{
    static char *last;
    free(last);
    rp_lexer_t lx;
    size_t n = 0, cap = 64;
    char *out = malloc(cap);
    out[0] = '\0';
    rp_lexer_init(&lx, "test.conf", text, len);
    for (;;) {
        rp_tok_type_t t = rp_lexer_next(&lx);
        if (n)
            append(&out, &n, &cap, " ", 1);
        char buf[200];
        switch (t) {
        case RP_TOK_WORD:
            append(&out, &n, &cap, lx.tok_quoted ? "q[" : "[", lx.tok_quoted ? 2 : 1);
            append_word(&out, &n, &cap, lx.buf, lx.buf_len);
            append(&out, &n, &cap, "]", 1);
            continue;
        case RP_TOK_SEMI:
            append(&out, &n, &cap, ";", 1);
            continue;
        case RP_TOK_LBRACE:
            append(&out, &n, &cap, "{", 1);
            continue;
        case RP_TOK_RBRACE:
            append(&out, &n, &cap, "}", 1);
            continue;
        case RP_TOK_EOF:
            append(&out, &n, &cap, "EOF", 3);
            break;
        case RP_TOK_ERROR:
            snprintf(buf, sizeof(buf), "ERROR:%u:%s", lx.tok_line, lx.error);
            append(&out, &n, &cap, buf, strlen(buf));
            break;
        }
        break;
    }
    rp_lexer_free(&lx);
    return last = out;
}

static char *lex(const char *text)
{
    return lex_n(text, strlen(text));
}

/* The line of every token, EOF included. */
static char *lines(const char *text)
{
    rp_lexer_t lx;
    static char out[512];
    size_t n = 0;
    rp_lexer_init(&lx, "test.conf", text, strlen(text));
    for (;;) {
        rp_tok_type_t t = rp_lexer_next(&lx);
        n += (size_t)snprintf(out + n, sizeof(out) - n, "%s%u", n ? " " : "", lx.tok_line);
        if (t == RP_TOK_EOF || t == RP_TOK_ERROR)
            break;
    }
    rp_lexer_free(&lx);
    return out;
}

START_TEST(test_words_are_separated_by_whitespace)
{
    ck_assert_str_eq(lex("  worker_processes \t 4 ;\n"), "[worker_processes] [4] ; EOF");
}
END_TEST

START_TEST(test_empty_input_is_eof)
{
    ck_assert_str_eq(lex(""), "EOF");
    ck_assert_str_eq(lex(" \n\t\r\n"), "EOF");
}
END_TEST

START_TEST(test_punctuation_is_a_token_even_without_spaces)
{
    ck_assert_str_eq(lex("http{server{listen 80;}}"),
                     "[http] { [server] { [listen] [80] ; } } EOF");
}
END_TEST

START_TEST(test_double_quotes_keep_spaces_and_punctuation)
{
    ck_assert_str_eq(lex("return 200 \"a b;{}#c 'd'\";"), "[return] [200] q[a b;{}#c 'd'] ; EOF");
}
END_TEST

START_TEST(test_a_closing_parenthesis_may_follow_a_quoted_string)
{
    /* nginx's `if ($ua ~* "(bot|spider)")`: the ")" is a word of its own */
    ck_assert_str_eq(lex("if ($ua ~* \"(bot|spider)\") {"),
                     "[if] [($ua] [~*] q[(bot|spider)] [)] { EOF");
    ck_assert_str_eq(lex("if ($a = \"\")"), "[if] [($a] [=] q[] [)] EOF");
}
END_TEST

START_TEST(test_single_quotes_keep_double_quotes)
{
    ck_assert_str_eq(lex("'say \"hi\"; {'"), "q[say \"hi\"; {] EOF");
}
END_TEST

START_TEST(test_empty_quotes_make_an_empty_word)
{
    ck_assert_str_eq(lex("a \"\" '';"), "[a] q[] q[] ; EOF");
}
END_TEST

START_TEST(test_quoted_escapes_are_decoded)
{
    ck_assert_str_eq(lex("\"q\\\"s\\'b\\\\n\\nt\\tr\\r\""), "q[q\"s'b\\n<LF>t<TAB>r<CR>] EOF");
}
END_TEST

START_TEST(test_escaped_quote_does_not_end_the_string)
{
    ck_assert_str_eq(lex("'it\\'s' x"), "q[it's] [x] EOF");
}
END_TEST

START_TEST(test_other_backslash_pairs_keep_the_backslash)
{
    /* "\$" must reach the variable compiler intact: there it means a literal "$". */
    ck_assert_str_eq(lex("\"\\$host \\d\" \\$uri"), "q[\\$host \\d] [\\$uri] EOF");
}
END_TEST

START_TEST(test_escapes_are_decoded_in_bare_words)
{
    ck_assert_str_eq(lex("a\\\"b c\\td"), "[a\"b] [c<TAB>d] EOF");
}
END_TEST

START_TEST(test_backslash_at_end_of_input_is_kept)
{
    ck_assert_str_eq(lex("a\\"), "[a\\] EOF");
}
END_TEST

START_TEST(test_variable_braces_inside_a_word_are_not_block_braces)
{
    ck_assert_str_eq(lex("return 200 ${host}x/${uri};"), "[return] [200] [${host}x/${uri}] ; EOF");
}
END_TEST

START_TEST(test_dollar_without_brace_is_plain_text)
{
    ck_assert_str_eq(lex("a$ {"), "[a$] { EOF");
}
END_TEST

START_TEST(test_unterminated_variable_braces_are_an_error)
{
    ck_assert_str_eq(lex("x;\na${host;"), "[x] ; ERROR:2:unterminated \"${\" in a variable name");
    ck_assert_str_eq(lex("a${host"), "ERROR:1:unterminated \"${\" in a variable name");
    ck_assert_str_eq(lex("a${ho st}"), "ERROR:1:unterminated \"${\" in a variable name");
}
END_TEST

START_TEST(test_comment_at_token_start_runs_to_end_of_line)
{
    ck_assert_str_eq(lex("a; # b; { } \"\nc;#d\ne"), "[a] ; [c] ; [e] EOF");
}
END_TEST

START_TEST(test_hash_inside_a_word_is_not_a_comment)
{
    ck_assert_str_eq(lex("a#b c#;"), "[a#b] [c#] ; EOF");
}
END_TEST

START_TEST(test_hash_inside_quotes_is_not_a_comment)
{
    ck_assert_str_eq(lex("\"#a\" '#b'"), "q[#a] q[#b] EOF");
}
END_TEST

START_TEST(test_token_line_counts_newlines)
{
    ck_assert_str_eq(lines("a\nb;\n\n  {\n}"), "1 2 2 4 5 5");
}
END_TEST

START_TEST(test_newlines_inside_quotes_and_comments_are_counted)
{
    /* a quoted word is on the line it starts; what follows moves on */
    ck_assert_str_eq(lines("\"x\ny\" # c\n z 'a\\\nb' w"), "1 3 3 4 4");
}
END_TEST

START_TEST(test_crlf_counts_as_one_line)
{
    ck_assert_str_eq(lines("a\r\nb\r\n\r\nc"), "1 2 4 4");
}
END_TEST

START_TEST(test_unterminated_quote_reports_the_line_it_opened)
{
    ck_assert_str_eq(lex("a;\n\"abc\ndef;\n"), "[a] ; ERROR:2:unterminated quoted string");
    ck_assert_str_eq(lex("'abc\\'"), "ERROR:1:unterminated quoted string");
}
END_TEST

START_TEST(test_nul_byte_in_a_word_is_an_error)
{
    ck_assert_str_eq(lex_n("a;\nab\0c;", 8), "[a] ; ERROR:2:unexpected NUL byte");
}
END_TEST

START_TEST(test_nul_byte_at_token_start_is_an_error)
{
    ck_assert_str_eq(lex_n("a \0", 3), "[a] ERROR:1:unexpected NUL byte");
}
END_TEST

START_TEST(test_nul_byte_inside_quotes_is_an_error)
{
    ck_assert_str_eq(lex_n("\"a\0b\"", 5), "ERROR:1:unexpected NUL byte");
}
END_TEST

START_TEST(test_nul_byte_after_a_backslash_is_an_error)
{
    /* a NUL must never become part of a word, whatever precedes it */
    ck_assert_str_eq(lex_n("\"a\\\0b\"", 6), "ERROR:1:unexpected NUL byte");
    ck_assert_str_eq(lex_n("a\\\0b", 4), "ERROR:1:unexpected NUL byte");
}
END_TEST

START_TEST(test_nul_byte_inside_variable_braces_is_an_error)
{
    ck_assert_str_eq(lex_n("a${h\0st}", 8), "ERROR:1:unexpected NUL byte");
}
END_TEST

START_TEST(test_text_after_a_closing_quote_is_an_error)
{
    ck_assert_str_eq(lex("x;\n\"a\"b"), "[x] ; ERROR:2:unexpected \"b\" after a quoted string");
    ck_assert_str_eq(lex("'a'\"b\""), "ERROR:1:unexpected \"\"\" after a quoted string");
}
END_TEST

START_TEST(test_closing_quote_may_touch_punctuation)
{
    ck_assert_str_eq(lex("\"a\";'b'{\"c\"}"), "q[a] ; q[b] { q[c] } EOF");
}
END_TEST

START_TEST(test_quote_inside_a_bare_word_is_literal)
{
    ck_assert_str_eq(lex("a\"b' c"), "[a\"b'] [c] EOF");
}
END_TEST

START_TEST(test_long_word_is_kept_whole)
{
    size_t n = 100000;
    char *text = malloc(n + 2);
    memset(text, 'x', n);
    text[n] = ';';
    text[n + 1] = '\0';
    rp_lexer_t lx;
    rp_lexer_init(&lx, "test.conf", text, n + 1);
    ck_assert_int_eq(rp_lexer_next(&lx), RP_TOK_WORD);
    ck_assert_uint_eq(lx.buf_len, n);
    ck_assert_uint_eq(strlen(lx.buf), n);
    ck_assert_int_eq(rp_lexer_next(&lx), RP_TOK_SEMI);
    ck_assert_int_eq(rp_lexer_next(&lx), RP_TOK_EOF);
    rp_lexer_free(&lx);
    free(text);
}
END_TEST

static Suite *lexer_suite(void)
{
    Suite *s = suite_create("lexer");
    TCase *tc = tcase_create("tokens");
    tcase_add_test(tc, test_words_are_separated_by_whitespace);
    tcase_add_test(tc, test_empty_input_is_eof);
    tcase_add_test(tc, test_punctuation_is_a_token_even_without_spaces);
    tcase_add_test(tc, test_long_word_is_kept_whole);
    suite_add_tcase(s, tc);

    tc = tcase_create("quotes and escapes");
    tcase_add_test(tc, test_double_quotes_keep_spaces_and_punctuation);
    tcase_add_test(tc, test_a_closing_parenthesis_may_follow_a_quoted_string);
    tcase_add_test(tc, test_single_quotes_keep_double_quotes);
    tcase_add_test(tc, test_empty_quotes_make_an_empty_word);
    tcase_add_test(tc, test_quoted_escapes_are_decoded);
    tcase_add_test(tc, test_escaped_quote_does_not_end_the_string);
    tcase_add_test(tc, test_other_backslash_pairs_keep_the_backslash);
    tcase_add_test(tc, test_escapes_are_decoded_in_bare_words);
    tcase_add_test(tc, test_backslash_at_end_of_input_is_kept);
    tcase_add_test(tc, test_closing_quote_may_touch_punctuation);
    tcase_add_test(tc, test_quote_inside_a_bare_word_is_literal);
    suite_add_tcase(s, tc);

    tc = tcase_create("variables and comments");
    tcase_add_test(tc, test_variable_braces_inside_a_word_are_not_block_braces);
    tcase_add_test(tc, test_dollar_without_brace_is_plain_text);
    tcase_add_test(tc, test_comment_at_token_start_runs_to_end_of_line);
    tcase_add_test(tc, test_hash_inside_a_word_is_not_a_comment);
    tcase_add_test(tc, test_hash_inside_quotes_is_not_a_comment);
    suite_add_tcase(s, tc);

    tc = tcase_create("lines");
    tcase_add_test(tc, test_token_line_counts_newlines);
    tcase_add_test(tc, test_newlines_inside_quotes_and_comments_are_counted);
    tcase_add_test(tc, test_crlf_counts_as_one_line);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_test(tc, test_unterminated_variable_braces_are_an_error);
    tcase_add_test(tc, test_unterminated_quote_reports_the_line_it_opened);
    tcase_add_test(tc, test_nul_byte_in_a_word_is_an_error);
    tcase_add_test(tc, test_nul_byte_at_token_start_is_an_error);
    tcase_add_test(tc, test_nul_byte_inside_quotes_is_an_error);
    tcase_add_test(tc, test_nul_byte_after_a_backslash_is_an_error);
    tcase_add_test(tc, test_nul_byte_inside_variable_braces_is_an_error);
    tcase_add_test(tc, test_text_after_a_closing_quote_is_an_error);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ut_run(lexer_suite());
}
