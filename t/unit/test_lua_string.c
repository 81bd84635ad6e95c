/*
 * The `ngx` string functions (src/lua/lua_string.c) in a bare VM: known vectors
 * for every encoder and digest (RFC 4648, RFC 1321, FIPS 180 / RFC 3174,
 * RFC 2202, the CRC-32 check value), and OpenResty's own behaviour wherever a
 * script can see it, as Debian's nginx with lua-nginx-module 0.10.23 answers.
 */
#include "lua_unit.h"

static void check(const char *code)
{
    lu_check(rp_lua_api_string, code);
}

START_TEST(test_encode_base64_gives_the_rfc4648_vectors)
{
    check("local v = {[''] = '', f = 'Zg==', fo = 'Zm8=', foo = 'Zm9v', foob = 'Zm9vYg==',\n"
          "  fooba = 'Zm9vYmE=', foobar = 'Zm9vYmFy'}\n"
          "for plain, enc in pairs(v) do eq(ngx.encode_base64(plain), enc, plain) end\n"
          "eq(ngx.encode_base64('\\255\\254\\253'), '//79')\n"
          "eq(ngx.encode_base64(string.rep('x', 10000)), string.rep('eHh4', 3333) .. 'eA==')\n");
}
END_TEST

START_TEST(test_encode_base64_drops_padding_when_asked)
{
    check("eq(ngx.encode_base64('f', true), 'Zg')\n"
          "eq(ngx.encode_base64('fo', true), 'Zm8')\n"
          "eq(ngx.encode_base64('foo', true), 'Zm9v')\n"
          "eq(ngx.encode_base64('f', false), 'Zg==')\n"
          "local ok, err = pcall(ngx.encode_base64, 'a', 1)\n"
          "eq(ok, false)\n"
          "eq(err, 'bad no_padding: boolean expected, got number')\n");
}
END_TEST

START_TEST(test_encode_base64_takes_nil_as_empty_and_others_through_tostring)
{
    check("eq(ngx.encode_base64(nil), '')\n"
          "eq(ngx.encode_base64(123), 'MTIz')\n"
          "eq(ngx.encode_base64(true), 'dHJ1ZQ==')\n");
}
END_TEST

START_TEST(test_decode_base64_reverses_the_rfc4648_vectors)
{
    check("for _, plain in ipairs{'', 'f', 'fo', 'foo', 'foob', 'fooba', 'foobar'} do\n"
          "  eq(ngx.decode_base64(ngx.encode_base64(plain)), plain, plain)\n"
          "  eq(ngx.decode_base64(ngx.encode_base64(plain, true)), plain, plain .. ' unpadded')\n"
          "end\n"
          "local all = {} for i = 0, 255 do all[#all + 1] = string.char(i) end\n"
          "all = table.concat(all)\n"
          "eq(ngx.decode_base64(ngx.encode_base64(all)), all, 'every byte')\n");
}
END_TEST

START_TEST(test_decode_base64_refuses_what_nginx_refuses)
{
    /* nginx stops at the first '=', refuses a character outside the alphabet
     * before it and a lone last character */
    check("eq(ngx.decode_base64('Z'), nil)\n"
          "eq(ngx.decode_base64('Zm9vY'), nil)\n"
          "eq(ngx.decode_base64('Zm9v\\n'), nil)\n"
          "eq(ngx.decode_base64('Zm 9v'), nil)\n"
          "eq(ngx.decode_base64('-_'), nil)\n"
          "eq(ngx.decode_base64('Zg==xx'), 'f')\n"
          "eq(ngx.decode_base64('Zg=!'), 'f')\n"
          "eq(ngx.decode_base64('Zh=='), 'f')\n"
          "eq(ngx.decode_base64('=abc'), '')\n"
          "local ok, err = pcall(ngx.decode_base64, 12)\n"
          "eq(ok, false) eq(err, 'string argument only')\n");
}
END_TEST

START_TEST(test_md5_gives_the_rfc1321_vectors)
{
    check("local v = {\n"
          "  [''] = 'd41d8cd98f00b204e9800998ecf8427e',\n"
          "  a = '0cc175b9c0f1b6a831c399e269772661',\n"
          "  abc = '900150983cd24fb0d6963f7d28e17f72',\n"
          "  ['message digest'] = 'f96b697d7cb7938d525a2f31aaf161d0',\n"
          "  abcdefghijklmnopqrstuvwxyz = 'c3fcd3d76192e4007dfb496cca67e13b',\n"
          "  ['12345678901234567890123456789012345678901234567890123456789012345678901234567890']"
          " = '57edf4a22be3c955ac49da2e2107b67a'}\n"
          "for plain, hex in pairs(v) do eq(ngx.md5(plain), hex, plain) end\n"
          "eq(ngx.md5(nil), 'd41d8cd98f00b204e9800998ecf8427e')\n"
          "eq(ngx.md5(12), 'c20ad4d76fe97759aa27a0c99bff6710')\n");
}
END_TEST

START_TEST(test_md5_bin_and_sha1_bin_give_the_raw_digests)
{
    check("local function hex(s) return (s:gsub('.', function(c)\n"
          "  return string.format('%02x', c:byte()) end)) end\n"
          "eq(#ngx.md5_bin('abc'), 16)\n"
          "eq(hex(ngx.md5_bin('abc')), '900150983cd24fb0d6963f7d28e17f72')\n"
          "eq(hex(ngx.sha1_bin('abc')), 'a9993e364706816aba3e25717850c26c9cd0d89d')\n"
          "eq(hex(ngx.sha1_bin('')), 'da39a3ee5e6b4b0d3255bfef95601890afd80709')\n"
          "eq(hex(ngx.sha1_bin(nil)), 'da39a3ee5e6b4b0d3255bfef95601890afd80709')\n"
          "eq(hex(ngx.sha1_bin('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq')),\n"
          "   '84983e441c3bd26ebaae4aa1f95129e5e54670f1')\n");
}
END_TEST

START_TEST(test_hmac_sha1_gives_the_rfc2202_vectors)
{
    check("local function hex(s) return (s:gsub('.', function(c)\n"
          "  return string.format('%02x', c:byte()) end)) end\n"
          "eq(hex(ngx.hmac_sha1(string.rep('\\11', 20), 'Hi There')),\n"
          "   'b617318655057264e28bc0b6fb378c8ef146be00', 'case 1')\n"
          "eq(hex(ngx.hmac_sha1('Jefe', 'what do ya want for nothing?')),\n"
          "   'effcdf6ae5eb2fa2d27416d5f184df9c259a7c79', 'case 2')\n"
          "eq(hex(ngx.hmac_sha1(string.rep('\\170', 20), string.rep('\\221', 50))),\n"
          "   '125d7342b9ac11cd91a39af48aa17b4f63f175d3', 'case 3')\n"
          "eq(hex(ngx.hmac_sha1(string.rep('\\170', 80),\n"
          "   'Test Using Larger Than Block-Size Key - Hash Key First')),\n"
          "   'aa4ae5e15272d00e95705637ce8a3b55ed402112', 'case 6')\n"
          "eq(hex(ngx.hmac_sha1(string.rep('\\170', 80), 'Test Using Larger Than Block-Size Key '\n"
          "   .. 'and Larger Than One Block-Size Data')),\n"
          "   'e8e99d0f45237d786d6bbaa7965c7808bbff1a91', 'case 7')\n");
}
END_TEST

START_TEST(test_hmac_sha1_wants_two_string_arguments)
{
    check("local ok, err = pcall(ngx.hmac_sha1, 'k')\n"
          "eq(ok, false) eq(err, 'expecting 2 arguments, but got 1')\n"
          "ok, err = pcall(ngx.hmac_sha1, 'k', nil)\n"
          "eq(ok, false) assert(err:find('string expected, got nil'), err)\n"
          "eq(#ngx.hmac_sha1('k', 12), 20)\n");
}
END_TEST

START_TEST(test_crc32_short_and_long_give_the_ieee_check_value)
{
    check("eq(ngx.crc32_short('123456789'), 0xCBF43926)\n"
          "eq(ngx.crc32_long('123456789'), 0xCBF43926)\n"
          "eq(ngx.crc32_short(''), 0)\n"
          "eq(ngx.crc32_long(nil), 0)\n"
          "eq(ngx.crc32_long('The quick brown fox jumps over the lazy dog'), 0x414FA339)\n");
}
END_TEST

START_TEST(test_escape_uri_escapes_a_component_by_default)
{
    /* all but ALPHA DIGIT - . _ ~, in upper-case hex */
    check("eq(ngx.escape_uri(\"a b/c?d=e&f+g~h*'()!$,;:@[]#\"),\n"
          "   \"a%20b%2Fc%3Fd%3De%26f%2Bg~h*'()!%24%2C%3B%3A%40%5B%5D%23\")\n"
          "eq(ngx.escape_uri('AZaz09-._~'), 'AZaz09-._~')\n"
          "eq(ngx.escape_uri('\\255\\128\\0\\127'), '%FF%80%00%7F')\n"
          "eq(ngx.escape_uri('\\228\\184\\173'), '%E4%B8%AD')\n"
          "eq(ngx.escape_uri(nil), '')\n"
          "eq(ngx.escape_uri(1.5), '1.5')\n");
}
END_TEST

START_TEST(test_escape_uri_types_escape_nginx_s_sets)
{
    /* for each type, which of the printable ASCII bytes it escapes (OpenResty's
     * tables, as Debian's nginx answered byte by byte) */
    check("local printable = {} for i = 32, 126 do printable[#printable + 1] = string.char(i) end\n"
          "printable = table.concat(printable)\n"
          "local function escaped(t)\n"
          "  local out = {}\n"
          "  for c in printable:gmatch('.') do\n"
          "    if ngx.escape_uri(c, t) ~= c then out[#out + 1] = c end\n"
          "  end\n"
          "  return table.concat(out)\n"
          "end\n"
          "eq(escaped(0), ' #%?', 'uri')\n"
          "eq(escaped(1), ' #%+?', 'args')\n"
          "eq(escaped(2), ' \"#$%&+,/:;<=>?@[\\\\]^`{|}', 'component')\n"
          "eq(escaped(3), ' \"#%\\'', 'html')\n"
          "eq(escaped(4), ' \"\\'', 'refresh')\n"
          "eq(escaped(5), ' %', 'memcached')\n"
          "eq(escaped(6), ' %', 'mail_auth')\n"
          "eq(ngx.escape_uri('\\128', 5), '\\128', 'memcached leaves high bytes')\n"
          "eq(ngx.escape_uri('\\128\\127', 0), '%80%7F')\n");
}
END_TEST

START_TEST(test_escape_uri_refuses_a_bad_type)
{
    check("local ok, err = pcall(ngx.escape_uri, 'a', 'x')\n"
          "eq(ok, false) assert(err:find('\"type\" is not a number', 1, true), err)\n"
          "ok, err = pcall(ngx.escape_uri, 'a', 7)\n"
          "eq(ok, false) assert(err:find('\"type\" 7 out of range', 1, true), err)\n"
          "ok, err = pcall(ngx.escape_uri, 'a', -1)\n"
          "eq(ok, false) assert(err:find('\"type\" -1 out of range', 1, true), err)\n");
}
END_TEST

START_TEST(test_unescape_uri_decodes_escapes_and_plus)
{
    check("local v = {['a%20b'] = 'a b', ['a+b'] = 'a b', ['%41%42'] = 'AB',\n"
          "  ['%e4%B8%ad'] = '\\228\\184\\173', ['%00x'] = '\\0x', ['?%3F'] = '?\\63',\n"
          "  ['%'] = '%', ['%4'] = '%4', ['%4g'] = '%4g', ['%zz'] = '%zz', ['%%41'] = '%A',\n"
          "  ['a%2'] = 'a%2', ['100%'] = '100%'}\n"
          "for esc, plain in pairs(v) do eq(ngx.unescape_uri(esc), plain, esc) end\n"
          "eq(ngx.unescape_uri(nil), '')\n"
          "eq(ngx.unescape_uri(12), '12')\n");
}
END_TEST

START_TEST(test_escape_and_unescape_round_trip_every_byte)
{
    check("local all = {} for i = 0, 255 do all[#all + 1] = string.char(i) end\n"
          "all = table.concat(all)\n"
          "for t = 1, 2 do -- type 0 leaves '+', which unescapes to a space\n"
          "  eq(ngx.unescape_uri(ngx.escape_uri(all, t)), all, 'type ' .. t)\n"
          "end\n"
          "local long = string.rep('a b/%', 5000)\n"
          "eq(ngx.unescape_uri(ngx.escape_uri(long)), long, 'long')\n");
}
END_TEST

START_TEST(test_encode_args_follows_openresty)
{
    check("eq(ngx.encode_args({}), '')\n"
          "eq(ngx.encode_args({a = 'b c'}), 'a=b%20c')\n"
          "eq(ngx.encode_args({['k y'] = 'v&='}), 'k%20y=v%26%3D')\n"
          "eq(ngx.encode_args({t = true}), 't')\n"
          "eq(ngx.encode_args({f = false}), '')\n"
          "eq(ngx.encode_args({n = 1.5}), 'n=1.5')\n"
          "eq(ngx.encode_args({n = 100}), 'n=100')\n"
          "eq(ngx.encode_args({arr = {'1', 2, true, false, 'x y'}}), 'arr=1&arr=2&arr&arr=x%20y')\n"
          "eq(ngx.encode_args({a = {}}), '')\n"
          "eq(ngx.encode_args({['\\228\\184\\173'] = \"~-_.!*'()\"}), \"%E4%B8%AD=~-_.!*'()\")\n"
          /* several keys: in the table's own order, joined by '&' */
          "local t = {a = '1', b = true, c = false, d = {'x', 'y'}}\n"
          "local want = {}\n"
          "for k, v in pairs(t) do\n"
          "  if v == true then want[#want + 1] = k\n"
          "  elseif type(v) == 'table' then for _, e in ipairs(v) do want[#want + 1] = k .. '=' .. "
          "e end\n"
          "  elseif v then want[#want + 1] = k .. '=' .. v end\n"
          "end\n"
          "eq(ngx.encode_args(t), table.concat(want, '&'))\n"
          "eq(ngx.decode_args(ngx.encode_args({q = 'a&b=c d+e'})).q, 'a&b=c d+e', 'round trip')\n"
          "local big = {} for i = 1, 300 do big['key' .. i] = string.rep('v ', 10) end\n"
          "local n = 0 for _ in pairs(ngx.decode_args(ngx.encode_args(big), 0)) do n = n + 1 end\n"
          "eq(n, 300, 'a result past the stack buffer')\n");
}
END_TEST

START_TEST(test_encode_args_refuses_what_openresty_refuses)
{
    check("local ok, err = pcall(ngx.encode_args, {1, 2})\n"
          "eq(ok, false) eq(err, 'attempt to use a non-string key in the \"args\" option table')\n"
          "ok, err = pcall(ngx.encode_args, {a = {{}}})\n"
          "eq(ok, false) eq(err, 'attempt to use table as query arg value')\n"
          "ok, err = pcall(ngx.encode_args, {a = print})\n"
          "eq(ok, false) eq(err, 'attempt to use function as query arg value')\n"
          "ok, err = pcall(ngx.encode_args, {a = 1}, 2)\n"
          "eq(ok, false) eq(err, 'expecting 1 argument but seen 2')\n"
          "ok, err = pcall(ngx.encode_args, 'x')\n"
          "eq(ok, false) assert(err:find('table expected, got string'), err)\n");
}
END_TEST

START_TEST(test_decode_args_builds_the_table_openresty_builds)
{
    check("same(ngx.decode_args('a=1&b=2&a=3&c&d=&=e&&f=%20+x&a=4'),\n"
          "  {a = {'1', '3', '4'}, b = '2', c = true, d = '', f = '  x'})\n"
          "same(ngx.decode_args(''), {})\n"
          "same(ngx.decode_args('a=b=c&%41=%42'), {a = 'b=c', A = 'B'})\n"
          "same(ngx.decode_args(12), {['12'] = true})\n"
          "same(ngx.decode_args('k&k=v'), {k = {true, 'v'}})\n");
}
END_TEST

START_TEST(test_decode_args_stops_at_the_limit_and_says_truncated)
{
    check("local t, err = ngx.decode_args('a=1&b=2&c=3', 2)\n"
          "same(t, {a = '1', b = '2'}) eq(err, 'truncated')\n"
          "t, err = ngx.decode_args('a=1&b=2', 2)\n"
          "same(t, {a = '1', b = '2'}) eq(err, nil)\n"
          /* counted at each '&', as OpenResty: even with nothing after it */
          "t, err = ngx.decode_args('a=1&', 1)\n"
          "same(t, {a = '1'}) eq(err, 'truncated')\n"
          "t, err = ngx.decode_args('&&&x', 2)\n"
          "same(t, {}) eq(err, 'truncated')\n"
          "t, err = ngx.decode_args('a=1&b=2&c=3', 0)\n"
          "same(t, {a = '1', b = '2', c = '3'}) eq(err, nil, 'no limit')\n"
          "t, err = ngx.decode_args('a=1&b=2&c=3', -1)\n"
          "same(t, {a = '1', b = '2', c = '3'}) eq(err, nil, 'negative: no limit')\n"
          "local s = {} for i = 1, 120 do s[#s + 1] = 'k' .. i .. '=' .. i end\n"
          "t, err = ngx.decode_args(table.concat(s, '&'))\n"
          "local n = 0 for _ in pairs(t) do n = n + 1 end\n"
          "eq(n, 100, 'default limit') eq(err, 'truncated')\n");
}
END_TEST

START_TEST(test_decode_args_checks_its_arguments)
{
    check("local ok, err = pcall(ngx.decode_args)\n"
          "eq(ok, false) eq(err, 'expecting 1 or 2 arguments but seen 0')\n"
          "ok, err = pcall(ngx.decode_args, 'a', 1, 2)\n"
          "eq(ok, false) eq(err, 'expecting 1 or 2 arguments but seen 3')\n"
          "ok, err = pcall(ngx.decode_args, 'a', nil)\n"
          "eq(ok, false) assert(err:find('number expected, got nil'), err)\n");
}
END_TEST

START_TEST(test_quote_sql_str_escapes_as_mysql)
{
    check("eq(ngx.quote_sql_str('a\\'b\"c\\\\d\\0e\\bf\\ng\\rh\\ti\\26j\\128'),\n"
          "   \"'a\\\\'b\\\\\\\"c\\\\\\\\d\\\\0e\\\\bf\\\\ng\\\\rh\\\\ti\\\\Zj\\128'\")\n"
          "eq(ngx.quote_sql_str(''), \"''\")\n"
          "eq(ngx.quote_sql_str(12), \"'12'\")\n"
          "local ok, err = pcall(ngx.quote_sql_str)\n"
          "eq(ok, false) eq(err, 'expecting one argument')\n"
          "ok, err = pcall(ngx.quote_sql_str, 'a', 'b')\n"
          "eq(ok, false) eq(err, 'expecting one argument')\n");
}
END_TEST

START_TEST(test_the_part_sets_every_function)
{
    check("for _, name in ipairs{'encode_base64', 'decode_base64', 'md5', 'md5_bin', 'sha1_bin',\n"
          "  'hmac_sha1', 'crc32_short', 'crc32_long', 'escape_uri', 'unescape_uri',\n"
          "  'encode_args', 'decode_args', 'quote_sql_str'} do\n"
          "  eq(type(ngx[name]), 'function', name)\n"
          "end\n");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("lua_string");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_encode_base64_gives_the_rfc4648_vectors);
    tcase_add_test(tc, test_encode_base64_drops_padding_when_asked);
    tcase_add_test(tc, test_encode_base64_takes_nil_as_empty_and_others_through_tostring);
    tcase_add_test(tc, test_decode_base64_reverses_the_rfc4648_vectors);
    tcase_add_test(tc, test_decode_base64_refuses_what_nginx_refuses);
    tcase_add_test(tc, test_md5_gives_the_rfc1321_vectors);
    tcase_add_test(tc, test_md5_bin_and_sha1_bin_give_the_raw_digests);
    tcase_add_test(tc, test_hmac_sha1_gives_the_rfc2202_vectors);
    tcase_add_test(tc, test_hmac_sha1_wants_two_string_arguments);
    tcase_add_test(tc, test_crc32_short_and_long_give_the_ieee_check_value);
    tcase_add_test(tc, test_escape_uri_escapes_a_component_by_default);
    tcase_add_test(tc, test_escape_uri_types_escape_nginx_s_sets);
    tcase_add_test(tc, test_escape_uri_refuses_a_bad_type);
    tcase_add_test(tc, test_unescape_uri_decodes_escapes_and_plus);
    tcase_add_test(tc, test_escape_and_unescape_round_trip_every_byte);
    tcase_add_test(tc, test_encode_args_follows_openresty);
    tcase_add_test(tc, test_encode_args_refuses_what_openresty_refuses);
    tcase_add_test(tc, test_decode_args_builds_the_table_openresty_builds);
    tcase_add_test(tc, test_decode_args_stops_at_the_limit_and_says_truncated);
    tcase_add_test(tc, test_decode_args_checks_its_arguments);
    tcase_add_test(tc, test_quote_sql_str_escapes_as_mysql);
    tcase_add_test(tc, test_the_part_sets_every_function);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ut_run(suite());
}
