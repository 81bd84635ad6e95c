/*
 * ngx.re (src/lua/lua_re.c) in a bare VM: every OpenResty option letter, the
 * match tables (numbered, named, unmatched groups as false, D's lists), find's
 * positions, gmatch, sub/gsub with templates and functions, ctx.pos, compile
 * errors, and the "o" cache (reuse, its bound, and patterns an iterator still
 * uses surviving eviction). The expected values are what Debian's nginx with
 * lua-nginx-module 0.10.23 answers, but for PCRE2's own error texts and codes.
 */
#include "lua/lua_re.h"
#include "lua_unit.h"

static void check(const char *code)
{
    lu_check(rp_lua_api_re, code);
}

START_TEST(test_match_gives_numbered_captures_and_false_for_unmatched_groups)
{
    check("same(ngx.re.match('hello 1234', '([0-9])([0-9]+)(x)?'),\n"
          "  {[0] = '1234', '1', '234', false})\n"
          "eq(ngx.re.match('hello', 'x'), nil)\n"
          "same(ngx.re.match('a', '(x)?(a)(y)?'), {[0] = 'a', false, 'a', false})\n");
}
END_TEST

START_TEST(test_match_gives_named_captures_as_string_keys)
{
    check("same(ngx.re.match('hello', '(?<first>h)(?<second>x)?'),\n"
          "  {[0] = 'h', 'h', false, first = 'h', second = false})\n"
          "local m = ngx.re.match('a=1', '(?<k>\\\\w+)=(?<v>\\\\w+)')\n"
          "eq(m.k, 'a') eq(m.v, '1') eq(m[1], 'a') eq(m[2], '1')\n");
}
END_TEST

START_TEST(test_option_D_lists_the_values_of_duplicate_names)
{
    check(
        "same(ngx.re.match('abab', '(?<n>a)(?<n>b)?', 'D'),\n"
        "  {[0] = 'ab', 'a', 'b', n = {'a', 'b'}})\n"
        "same(ngx.re.match('ab', '(?<n>x)|(?<n>a)', 'D'), {[0] = 'a', false, 'a', n = {'a'}})\n"
        /* a name none of whose groups matched is absent */
        "same(ngx.re.match('ab', '(?<n>x)|(?<n>y)|b', 'D'), {[0] = 'b', false, false})\n"
        "local m, err = ngx.re.match('ab', '(?<n>a)(?<n>b)')\n"
        "eq(m, nil) assert(err:find('two named subpatterns have the same name', 1, true), err)\n");
}
END_TEST

START_TEST(test_options_i_m_s_x_a_change_what_matches)
{
    check("same(ngx.re.match('HELLO', 'hello', 'i'), {[0] = 'HELLO'})\n"
          "eq(ngx.re.match('HELLO', 'hello'), nil)\n"
          "same(ngx.re.match('a\\nb', '^b', 'm'), {[0] = 'b'})\n"
          "eq(ngx.re.match('a\\nb', '^b'), nil)\n"
          "same(ngx.re.match('a\\nb', 'a.b', 's'), {[0] = 'a\\nb'})\n"
          "eq(ngx.re.match('a\\nb', 'a.b'), nil)\n"
          "same(ngx.re.match('abc', 'a b c', 'x'), {[0] = 'abc'})\n"
          "eq(ngx.re.match('abc', 'a b c'), nil)\n"
          "eq(ngx.re.match('xabc', 'abc', 'a'), nil)\n"
          "same(ngx.re.match('abcx', 'abc', 'a'), {[0] = 'abc'})\n"
          "same(ngx.re.match('xabc', 'abc'), {[0] = 'abc'})\n");
}
END_TEST

START_TEST(test_option_d_gives_the_longest_match_and_no_captures)
{
    check("same(ngx.re.match('abcabc', 'a.*?c', 'd'), {[0] = 'abcabc'})\n"
          "same(ngx.re.match('abcabc', 'a.*?c'), {[0] = 'abc'})\n"
          "same(ngx.re.match('abcabc', '(a)(.*?)c', 'd'), {[0] = 'abcabc'})\n"
          "local from, to = ngx.re.find('abab', 'ab|abab', 'd')\n"
          "eq(from, 1) eq(to, 4)\n"
          "local _, _, err = ngx.re.find('abab', '(a)b', 'd', nil, 1)\n"
          "eq(err, 'nth out of bound')\n"
          "eq(select(1, ngx.re.gsub('ab12cd', '[0-9]+', '#', 'd')), 'ab#cd')\n");
}
END_TEST

START_TEST(test_option_j_matches_as_without_it)
{
    check("same(ngx.re.match('abc', 'b', 'j'), {[0] = 'b'})\n"
          "same(ngx.re.match('abc', '(?<x>b)(c)', 'jo'), {[0] = 'bc', 'b', 'c', x = 'b'})\n"
          "same(ngx.re.match('abc', '(?<x>b)(c)', 'jo'), {[0] = 'bc', 'b', 'c', x = 'b'})\n"
          "eq(select(1, ngx.re.gsub('a1b2', '[0-9]', '', 'j')), 'ab')\n");
}
END_TEST

START_TEST(test_options_u_and_U_match_utf8_characters)
{
    check("local zhong = '\\228\\184\\173'\n"
          "same(ngx.re.match(zhong .. 'x', '^.x', 'u'), {[0] = zhong .. 'x'})\n"
          "eq(ngx.re.match(zhong .. 'x', '^.x'), nil)\n"
          "same(ngx.re.match(zhong .. 'x', '^.x', 'U'), {[0] = zhong .. 'x'})\n"
          /* u checks the subject: invalid UTF-8 is an error, not a miss */
          "local m, err = ngx.re.match('\\255x', 'x', 'u')\n"
          "eq(m, nil) assert(err:find('^pcre_exec%(%) failed: %-%d+$'), err)\n"
          /* an empty match steps over a whole character */
          "eq(select(1, ngx.re.gsub(zhong .. zhong, '', '-', 'u')), '-' .. zhong .. '-' .. zhong "
          ".. '-')\n");
}
END_TEST

START_TEST(test_option_J_is_javascript_compatibility)
{
    check("same(ngx.re.match('a', '\\\\u0061', 'J'), {[0] = 'a'})\n"
          "eq(ngx.re.match('a', '[]a', 'J'), nil)\n"
          "local m, err = ngx.re.match('a', '\\\\u0061')\n"
          "eq(m, nil) assert(err:find('pcre2_compile() failed', 1, true), err)\n");
}
END_TEST

START_TEST(test_an_unknown_option_letter_raises_an_error)
{
    check("local ok, err = pcall(ngx.re.match, 'a', 'a', 'z')\n"
          "eq(ok, false) eq(err, 'unknown flag \"z\" (flags \"z\")')\n"
          "ok, err = pcall(ngx.re.gsub, 'a', 'a', 'b', 'iQ')\n"
          "eq(ok, false) eq(err, 'unknown flag \"Q\" (flags \"iQ\")')\n"
          "ok, err = pcall(function() return ngx.re.find('a', 'a', 'ix') end)\n"
          "eq(ok, true)\n"
          "ok, err = pcall(function() local from = ngx.re.find('a', 'a', 'e') return from end)\n"
          "eq(ok, false) assert(err:find('^%[string .*%]:%d+: unknown flag \"e\"'), err)\n");
}
END_TEST

START_TEST(test_a_bad_pattern_returns_nil_and_pcre2s_message)
{
    check("local m, err = ngx.re.match('a', '(')\n"
          "eq(m, nil) eq(err, 'pcre2_compile() failed: missing closing parenthesis in \"(\"')\n"
          "m, err = ngx.re.match('a', 'a)b')\n"
          "eq(err, 'pcre2_compile() failed: unmatched closing parenthesis in \"a)b\" at \")b\"')\n"
          "local from, to, ferr = ngx.re.find('a', '(')\n"
          "eq(from, nil) eq(to, nil) assert(ferr:find('missing closing parenthesis', 1, true))\n"
          "local s, n, serr = ngx.re.gsub('a', '(', 'x')\n"
          "eq(s, nil) eq(n, nil) assert(serr:find('missing closing parenthesis', 1, true))\n"
          "local it, gerr = ngx.re.gmatch('a', '(')\n"
          "eq(it, nil) assert(gerr:find('missing closing parenthesis', 1, true))\n"
          "m, err = ngx.re.match('a', '(', 'o')\n"
          "eq(m, nil) assert(err:find('missing closing parenthesis', 1, true))\n");
}
END_TEST

START_TEST(test_ctx_pos_starts_the_search_and_moves_past_the_match)
{
    check(
        "local ctx = {}\n"
        "same(ngx.re.match('a1b2c3', '[0-9]', '', ctx), {[0] = '1'}) eq(ctx.pos, 3)\n"
        "same(ngx.re.match('a1b2c3', '[0-9]', '', ctx), {[0] = '2'}) eq(ctx.pos, 5)\n"
        "ctx = {pos = 0}\n"
        "same(ngx.re.match('a1b2c3', '[0-9]', '', ctx), {[0] = '1'}) eq(ctx.pos, 3)\n"
        "ctx = {pos = 7}\n"
        "same(ngx.re.match('a1b2c3', '', '', ctx), {[0] = ''}) eq(ctx.pos, 7)\n"
        "ctx = {pos = 4}\n"
        "same(ngx.re.match('a1b2c3', '[0-9]', 'a', ctx), {[0] = '2'}) eq(ctx.pos, 5)\n"
        "ctx = {pos = 100}\n"
        "local m, err = ngx.re.match('a1b2c3', '[0-9]', '', ctx)\n"
        "eq(m, nil) assert(err:find('^pcre_exec'), err) eq(ctx.pos, 100)\n"
        "ctx = {}\n"
        "local from, to = ngx.re.find('a1b2', '[0-9]', '', ctx)\n"
        "eq(from, 2) eq(to, 2) eq(ctx.pos, 3)\n"
        "ctx = {pos = 2}\n"
        "eq(ngx.re.match('abc', 'a', '', ctx), nil) eq(ctx.pos, 2, 'unchanged without a match')\n");
}
END_TEST

START_TEST(test_match_fills_the_table_it_is_given)
{
    check("local res = {extra = 1}\n"
          "local m = ngx.re.match('ab', '(a)(b)', '', nil, res)\n"
          "assert(m == res)\n"
          "same(res, {[0] = 'ab', 'a', 'b', extra = 1})\n");
}
END_TEST

START_TEST(test_the_subject_goes_through_tostring)
{
    check("same(ngx.re.match(nil, 'nil'), {[0] = 'nil'})\n"
          "same(ngx.re.match(12321, '2(3)'), {[0] = '23', '3'})\n"
          "eq(select(1, ngx.re.gsub(12321, '2', 'x')), '1x3x1')\n");
}
END_TEST

START_TEST(test_find_gives_positions_of_the_match_or_its_nth_capture)
{
    check("local function f(...) return {n = select('#', ...), ...} end\n"
          "same(f(ngx.re.find('hello 1234', '([0-9])([0-9]+)')), {n = 2, 7, 10})\n"
          "same(f(ngx.re.find('hello 1234', '([0-9])([0-9]+)', '', nil, 2)), {n = 2, 8, 10})\n"
          "same(f(ngx.re.find('hello 1234', '([0-9])([0-9]+)', '', nil, 3)),\n"
          "  {n = 3, [3] = 'nth out of bound'})\n"
          "same(f(ngx.re.find('hello 1234', '([0-9])(x)?', '', nil, 2)), {n = 2})\n"
          "same(f(ngx.re.find('hello', 'x')), {n = 1})\n"
          "same(f(ngx.re.find('hello', '')), {n = 2, 1, 0})\n");
}
END_TEST

START_TEST(test_gmatch_iterates_over_every_match)
{
    check("local got = {}\n"
          "for m in ngx.re.gmatch('a1b22c333', '[0-9]+') do got[#got + 1] = m[0] end\n"
          "same(got, {'1', '22', '333'})\n"
          "got = {}\n"
          "for m in ngx.re.gmatch('a=1, b=2', '(?<k>\\\\w+)=(?<v>\\\\w+)') do\n"
          "  got[#got + 1] = m.k .. ':' .. m.v .. ':' .. m[2] end\n"
          "same(got, {'a:1:1', 'b:2:2'})\n"
          /* empty matches: one per position, the last at the end */
          "local n = 0\n"
          "for m in ngx.re.gmatch('abc', 'x*') do eq(m[0], '') n = n + 1 end\n"
          "eq(n, 4)\n"
          "local it = ngx.re.gmatch('ab', 'a|b')\n"
          "eq(it()[0], 'a') eq(it()[0], 'b') eq(it(), nil) eq(it(), nil)\n");
}
END_TEST

START_TEST(test_sub_and_gsub_expand_templates)
{
    check("local function r(...) return {...} end\n"
          "same(r(ngx.re.sub('hello world', 'o', '0')), {'hell0 world', 1})\n"
          "same(r(ngx.re.gsub('hello world', 'o', '0')), {'hell0 w0rld', 2})\n"
          "same(r(ngx.re.gsub('hello world', '(o)', '[$1$1]')), {'hell[oo] w[oo]rld', 2})\n"
          "same(r(ngx.re.gsub('hello world', '(o)', '[$0]')), {'hell[o] w[o]rld', 2})\n"
          "same(r(ngx.re.gsub('hello world', '(o)', '${1}x')), {'hellox woxrld', 2})\n"
          "same(r(ngx.re.gsub('hello world', '(o)', '$1a')), {'helloa woarld', 2})\n"
          "same(r(ngx.re.gsub('hello world', '(o)', '$$1')), {'hell$1 w$1rld', 2})\n"
          "same(r(ngx.re.gsub('hello world', '(o)', '$2.')), {'hell. w.rld', 2})\n"
          "same(r(ngx.re.gsub('hello world', '(o)', '$10.')), {'hell. w.rld', 2})\n"
          "same(r(ngx.re.gsub('hello world', '(o)(x)?', '<$2>')), {'hell<> w<>rld', 2})\n"
          "same(r(ngx.re.gsub('hello world', '(?<x>o)', '${x}')), {'hello world', 2})\n"
          "same(r(ngx.re.gsub('hello world', '(?<x>o)', '[$x]')), {'hell[o] w[o]rld', 2})\n"
          "same(r(ngx.re.gsub('hello', 'l', 5)), {'he55o', 2})\n"
          "same(r(ngx.re.gsub('abc', 'x', '-')), {'abc', 0})\n"
          "same(r(ngx.re.sub('abc', 'x', '-')), {'abc', 0})\n");
}
END_TEST

START_TEST(test_a_bad_template_is_an_error_returned)
{
    check("for _, tpl in ipairs{'$', '${1', '${}', '$-', '${1a}', '${nope}'} do\n"
          "  local s, n, err = ngx.re.gsub('hello world', '(o)', tpl)\n"
          "  eq(s, nil, tpl) eq(n, nil, tpl)\n"
          "  eq(err, 'failed to compile the replacement template', tpl)\n"
          "end\n"
          /* even when nothing matches */
          "eq(select(3, ngx.re.gsub('abc', 'x', '$')), 'failed to compile the replacement "
          "template')\n");
}
END_TEST

START_TEST(test_gsub_handles_empty_matches_as_openresty)
{
    check("local function r(...) return {...} end\n"
          "same(r(ngx.re.gsub('abc', '', '-')), {'-a-b-c-', 4})\n"
          "same(r(ngx.re.gsub('abc', 'x*', '-')), {'-a-b-c-', 4})\n"
          "same(r(ngx.re.gsub('aaa', 'a*', '-')), {'--', 2})\n"
          "same(r(ngx.re.sub('abc', '', '-')), {'-abc', 1})\n");
}
END_TEST

START_TEST(test_gsub_calls_a_function_with_each_match_table)
{
    check("local function r(...) return {...} end\n"
          "same(r(ngx.re.gsub('hello world', '(o)(x)?', function(m)\n"
          "  return '<' .. m[0] .. tostring(m[2]) .. '>' end)), {'hell<ofalse> w<ofalse>rld', 2})\n"
          "same(r(ngx.re.gsub('hello', 'l', function() return nil end)), {'henilnilo', 2})\n"
          "same(r(ngx.re.gsub('hello', 'l', function() return 12 end)), {'he1212o', 2})\n"
          "same(r(ngx.re.sub('hello', 'l', function() return 'L' end)), {'heLlo', 1})\n"
          "same(r(ngx.re.gsub('k1=v1;k2=v2', '(?<k>\\\\w+)=(?<v>\\\\w+)', function(m)\n"
          "  return m.v .. '=' .. m.k end)), {'v1=k1;v2=k2', 2})\n"
          /* the callback may use ngx.re itself */
          "same(r(ngx.re.gsub('a1 b2', '\\\\w+', function(m)\n"
          "  return (ngx.re.gsub(m[0], '[0-9]', '#', 'o')) end, 'o')), {'a# b#', 2})\n"
          "local ok, err = pcall(ngx.re.gsub, 'hello', 'l', function() error('boom') end)\n"
          "eq(ok, false) assert(err:find('boom'), err)\n"
          "local big = string.rep('ab', 20000)\n"
          "local s, n = ngx.re.gsub(big, 'b', function() return 'xyz' end)\n"
          "eq(n, 20000) eq(s, string.rep('axyz', 20000))\n");
}
END_TEST

START_TEST(test_many_captures_are_all_collected)
{
    /* more groups than the small on-stack vector holds */
    check("local pat = string.rep('(.)', 40)\n"
          "local subj = string.rep('x', 39) .. 'y'\n"
          "local m = ngx.re.match(subj, pat)\n"
          "eq(#m, 40) eq(m[40], 'y') eq(m[0], subj)\n"
          "eq(select(1, ngx.re.gsub(subj, pat, '$40$1')), 'yx')\n");
}
END_TEST

/* The VM's ngx.re on its stack, for the cache's C side. */
static lua_State *vm_with_re(void)
{
    lua_State *L = lu_vm(rp_lua_api_re);
    lua_getglobal(L, "ngx");
    lua_getfield(L, -1, "re");
    return L;
}

START_TEST(test_option_o_compiles_a_pattern_once)
{
    lua_State *L = vm_with_re();
    ck_assert_uint_eq(rp_lua_re_cache_count(L, -1), 0);
    lu_run(L, "for i = 1, 10 do eq(ngx.re.match('abc', 'b', 'o')[0], 'b') end");
    ck_assert_uint_eq(rp_lua_re_cache_count(L, -1), 1);
    /* the options that change the compiled pattern are part of the key */
    lu_run(L, "eq(ngx.re.match('aBc', 'b', 'io')[0], 'B')\n"
              "eq(ngx.re.find('abc', 'b', 'jo'), 2)\n"
              "eq(ngx.re.match('abc', 'b', 'do')[0], 'b')\n");
    ck_assert_uint_eq(rp_lua_re_cache_count(L, -1), 2);
    /* without o nothing is kept */
    lu_run(L, "for i = 1, 10 do ngx.re.match('abc', 'c' .. i) end");
    ck_assert_uint_eq(rp_lua_re_cache_count(L, -1), 2);
    lu_run(L, "eq(select(1, ngx.re.gsub('abc', 'c', 'C', 'o')), 'abC')");
    ck_assert_uint_eq(rp_lua_re_cache_count(L, -1), 3);
    lua_close(L);
}
END_TEST

START_TEST(test_the_cache_is_bounded_and_keeps_the_recently_used)
{
    lua_State *L = vm_with_re();
    rp_lua_re_set_cache_max(L, -1, 3);
    lu_run(L, "for i = 1, 10 do eq(ngx.re.match('x' .. i, 'x' .. i, 'o')[0], 'x' .. i) end");
    ck_assert_uint_eq(rp_lua_re_cache_count(L, -1), 3);
    rp_lua_re_set_cache_max(L, -1, 0);
    ck_assert_uint_eq(rp_lua_re_cache_count(L, -1), 0);
    lu_run(L, "eq(ngx.re.match('abc', 'b', 'o')[0], 'b')");
    ck_assert_uint_eq(rp_lua_re_cache_count(L, -1), 0);
    lua_close(L);
}
END_TEST

START_TEST(test_an_iterator_keeps_its_pattern_when_the_cache_evicts_it)
{
    lua_State *L = vm_with_re();
    rp_lua_re_set_cache_max(L, -1, 1);
    lu_run(L,
           "local it = ngx.re.gmatch('a1b2c3', '[0-9]', 'o')\n"
           "eq(it()[0], '1')\n"
           "for i = 1, 5 do ngx.re.match('z', 'z' .. i, 'o') end\n"
           "collectgarbage() collectgarbage()\n"
           "eq(it()[0], '2') eq(it()[0], '3') eq(it(), nil)\n"
           /* and a running gsub's pattern, evicted by its own callback */
           "local s = ngx.re.gsub('abc', '[a-z]', function(m)\n"
           "  ngx.re.match('q', 'q' .. m[0], 'o') collectgarbage() return m[0]:upper() end, 'o')\n"
           "eq(s, 'ABC')\n");
    ck_assert_uint_eq(rp_lua_re_cache_count(L, -1), 1);
    lua_close(L);
}
END_TEST

START_TEST(test_the_part_sets_re_and_its_functions)
{
    check("eq(type(ngx.re), 'table')\n"
          "for _, name in ipairs{'match', 'find', 'gmatch', 'sub', 'gsub'} do\n"
          "  eq(type(ngx.re[name]), 'function', name)\n"
          "end\n");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("lua_re");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_match_gives_numbered_captures_and_false_for_unmatched_groups);
    tcase_add_test(tc, test_match_gives_named_captures_as_string_keys);
    tcase_add_test(tc, test_option_D_lists_the_values_of_duplicate_names);
    tcase_add_test(tc, test_options_i_m_s_x_a_change_what_matches);
    tcase_add_test(tc, test_option_d_gives_the_longest_match_and_no_captures);
    tcase_add_test(tc, test_option_j_matches_as_without_it);
    tcase_add_test(tc, test_options_u_and_U_match_utf8_characters);
    tcase_add_test(tc, test_option_J_is_javascript_compatibility);
    tcase_add_test(tc, test_an_unknown_option_letter_raises_an_error);
    tcase_add_test(tc, test_a_bad_pattern_returns_nil_and_pcre2s_message);
    tcase_add_test(tc, test_ctx_pos_starts_the_search_and_moves_past_the_match);
    tcase_add_test(tc, test_match_fills_the_table_it_is_given);
    tcase_add_test(tc, test_the_subject_goes_through_tostring);
    tcase_add_test(tc, test_find_gives_positions_of_the_match_or_its_nth_capture);
    tcase_add_test(tc, test_gmatch_iterates_over_every_match);
    tcase_add_test(tc, test_sub_and_gsub_expand_templates);
    tcase_add_test(tc, test_a_bad_template_is_an_error_returned);
    tcase_add_test(tc, test_gsub_handles_empty_matches_as_openresty);
    tcase_add_test(tc, test_gsub_calls_a_function_with_each_match_table);
    tcase_add_test(tc, test_many_captures_are_all_collected);
    tcase_add_test(tc, test_option_o_compiles_a_pattern_once);
    tcase_add_test(tc, test_the_cache_is_bounded_and_keeps_the_recently_used);
    tcase_add_test(tc, test_an_iterator_keeps_its_pattern_when_the_cache_evicts_it);
    tcase_add_test(tc, test_the_part_sets_re_and_its_functions);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ut_run(suite());
}
