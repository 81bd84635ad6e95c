/*
 * ngx.shared.DICT (src/lua/lua_shdict.c) in a bare LuaJIT VM whose global `ngx`
 * holds only the shared dictionaries, read from a configuration's zones mapped as
 * the master maps them: the directive's refusals, every method's returns as
 * OpenResty gives them (types kept, flags, errors, forcible), expiry on a clock the
 * test moves, a full zone, incr, lists, tables stored beyond OpenResty, a reload
 * keeping a dictionary, and processes forked from one VM counting exactly.
 *
 * Most assertions are Lua: run() fails the test with the chunk's error, whose
 * message names the line of the failed check.
 */
#include "core/shm.h"
#include "lua/lua_shdict.h"
#include "unit.h"

#include <sys/wait.h>

static rp_cycle_t *cycle;
static lua_State *L;
static int64_t fake_now = 1700000000000;

static int64_t test_clock(void)
{
    return fake_now;
}

/* advance(ms): moves the dictionaries' clock. */
static int l_advance(lua_State *ls)
{
    fake_now += (int64_t)luaL_checknumber(ls, 1);
    return 0;
}

static const char *prelude =
    "function eq(got, want, what)\n"
    "  if got ~= want then\n"
    "    error((what or 'value') .. ': got ' .. tostring(got) .. ' (' .. type(got) .. '), want '\n"
    "          .. tostring(want) .. ' (' .. type(want) .. ')', 2)\n"
    "  end\n"
    "end\n"
    "function same(a, b)\n"
    "  if type(a) ~= 'table' or type(b) ~= 'table' then return a == b end\n"
    "  for k, v in pairs(a) do if not same(v, b[k]) then return false end end\n"
    "  for k in pairs(b) do if a[k] == nil then return false end end\n"
    "  return true\n"
    "end\n"
    "function n(...) return select('#', ...) end\n"
    "dogs = ngx.shared.dogs\n"
    "tiny = ngx.shared.tiny\n";

static void run(const char *code)
{
    if (luaL_loadstring(L, code) != 0 || lua_pcall(L, 0, 0, 0) != 0) {
        const char *msg = lua_tostring(L, -1);
        ck_abort_msg("%s", msg ? msg : "(no message)");
    }
}

static lua_State *vm_of(rp_cycle_t *c)
{
    lua_State *ls = luaL_newstate();
    ck_assert_ptr_nonnull(ls);
    luaL_openlibs(ls);
    lua_newtable(ls);
    rp_lua_api_shdict(ls, c);
    lua_setglobal(ls, "ngx");
    lua_pushcfunction(ls, l_advance);
    lua_setglobal(ls, "advance");
    return ls;
}

static rp_cycle_t *open_cycle(const char *conf, const rp_cycle_t *prev)
{
    rp_cycle_t *c = ut_load_ok(conf);
    char err[512];
    ck_assert_msg(rp_shm_open(c, prev, err, sizeof(err)) == 0, "%s", err);
    return c;
}

static const char *conf_text = "http {\n"
                               "    lua_shared_dict dogs 1m;\n"
                               "    lua_shared_dict tiny 8k;\n"
                               "}\n";

static void setup(void)
{
    ut_setup_dir();
    rp_lua_shdict_set_clock(test_clock);
    cycle = open_cycle(conf_text, NULL);
    L = vm_of(cycle);
    run(prelude);
}

static void teardown(void)
{
    lua_close(L);
    rp_cycle_destroy(cycle);
    ut_teardown_dir();
}

START_TEST(test_values_come_back_with_their_lua_type_and_flags)
{
    run("eq(n(dogs:set('s', 'a\\0b')), 3)\n"
        "local ok, err, forcible = dogs:set('s', 'a\\0b')\n"
        "eq(ok, true) eq(err, nil) eq(forcible, false)\n"
        "eq(dogs:get('s'), 'a\\0b')\n"
        "eq(n(dogs:get('s')), 1, 'no flags returned when they are 0')\n"
        "dogs:set('e', '') eq(dogs:get('e'), '')\n"
        "dogs:set('f', 3.25) eq(dogs:get('f'), 3.25)\n"
        "dogs:set('i', -7) eq(dogs:get('i'), -7)\n"
        "dogs:set('big', 2^60) eq(dogs:get('big'), 2^60)\n"
        "dogs:set('t', true) eq(dogs:get('t'), true)\n"
        "dogs:set('no', false) eq(dogs:get('no'), false)\n"
        "dogs:set('num', '12') eq(type(dogs:get('num')), 'string')\n"
        "dogs:set('fl', 'v', 0, 42)\n"
        "local v, flags = dogs:get('fl') eq(v, 'v') eq(flags, 42)\n"
        "eq(dogs:get('missing'), nil) eq(n(dogs:get('missing')), 1)\n"
        "dogs:set(12, 'number key') eq(dogs:get('12'), 'number key')\n"
        "local big = string.rep('x', 300000) dogs:set('large', big)\n"
        "eq(dogs:get('large'), big)\n");
}
END_TEST

START_TEST(test_tables_are_stored_encoded_and_come_back_as_new_tables)
{
    run("local t = {1, 2.5, 'three', true, false, {nested = {deep = 'yes'}}, [-3] = 'neg',\n"
        "           [2^53] = 'max', name = 'x\\0y', [true] = 'bool key', [0.5] = 'half'}\n"
        "local ok, err = dogs:set('t', t) eq(ok, true) eq(err, nil)\n"
        "local got = dogs:get('t')\n"
        "assert(got ~= t and same(got, t), 'a copy of the same pairs')\n"
        "eq(got[6].nested.deep, 'yes')\n"
        "dogs:set('empty', {}) eq(next(dogs:get('empty')), nil)\n"
        "local shared = {1} dogs:set('twice', {a = shared, b = shared})\n"
        "eq(dogs:get('twice').b[1], 1)\n"
        "local ok, err = dogs:set('fn', {f = print})\n"
        "eq(ok, nil) eq(err, 'cannot store a function')\n"
        "local c = {} c.self = c\n"
        "ok, err = dogs:set('cycle', c) eq(ok, nil) eq(err, 'cannot store a table inside itself')\n"
        "ok, err = dogs:set('tk', {[{}] = 1}) eq(ok, nil) eq(err, 'cannot store a table key')\n"
        "local deep = {} local p = deep for i = 1, 200 do p.x = {} p = p.x end\n"
        "ok, err = dogs:set('deep', deep) eq(ok, nil) eq(err, 'table nested too deep')\n"
        "eq(dogs:get('fn'), nil) eq(dogs:get('cycle'), nil)\n"
        "ok, err = dogs:set('f', print) eq(ok, nil) eq(err, 'bad value type')\n"
        "ok, err = dogs:set('u', io.stdout) eq(ok, nil) eq(err, 'bad value type')\n");
}
END_TEST

START_TEST(test_add_replace_and_nil_values_answer_as_openresty)
{
    run("local ok, err, forcible = dogs:add('k', 1)\n"
        "eq(ok, true) eq(err, nil) eq(forcible, false)\n"
        "ok, err, forcible = dogs:add('k', 2)\n"
        "eq(ok, false) eq(err, 'exists') eq(forcible, false) eq(dogs:get('k'), 1)\n"
        "ok, err = dogs:safe_add('k', 2) eq(ok, false) eq(err, 'exists')\n"
        "ok, err, forcible = dogs:replace('nope', 1)\n"
        "eq(ok, false) eq(err, 'not found') eq(forcible, false) eq(dogs:get('nope'), nil)\n"
        "ok, err = dogs:replace('k', 'two') eq(ok, true) eq(dogs:get('k'), 'two')\n"
        "for _, m in ipairs{'add', 'safe_add', 'replace'} do\n"
        "  for _, k in ipairs{'k', 'new'} do\n"
        "    ok, err, forcible = dogs[m](dogs, k, nil)\n"
        "    eq(ok, false, m) eq(err, 'attempt to add or replace nil values', m)\n"
        "    eq(forcible, false)\n"
        "  end\n"
        "end\n"
        "eq(dogs:get('k'), 'two') eq(dogs:get('new'), nil)\n"
        "ok, err = dogs:safe_set('k', nil) eq(ok, true) eq(dogs:get('k'), nil)\n"
        "dogs:set('k', 1) ok = dogs:set('k', nil) eq(ok, true) eq(dogs:get('k'), nil)\n"
        "dogs:set('k', 1) eq(dogs:delete('k'), true) eq(dogs:get('k'), nil)\n"
        "eq(dogs:delete('never'), true)\n"
        "ok, err = dogs:safe_set('s', 'v') eq(ok, true) eq(dogs:get('s'), 'v')\n"
        "dogs:set('x', 1, 1) advance(1000)\n"
        "ok, err = dogs:add('x', 2) eq(ok, true, 'add over an expired entry')\n"
        "ok, err = dogs:replace('gone', 2, 1) advance(1000) ok, err = dogs:replace('gone', 3)\n"
        "eq(err, 'not found')\n");
}
END_TEST

START_TEST(test_bad_keys_and_arguments_are_refused_as_openresty)
{
    run("for _, m in ipairs{'get', 'get_stale', 'set', 'add', 'replace', 'delete', 'incr',\n"
        "                   'ttl', 'expire', 'lpush', 'rpush', 'lpop', 'rpop', 'llen'} do\n"
        "  local list = m:find('pop') or m == 'llen'\n"
        "  local function call(k)\n"
        "    if list then return dogs[m](dogs, k) end\n"
        "    return dogs[m](dogs, k, 1)\n"
        "  end\n"
        "  local v, err = call(nil) eq(v, nil, m) eq(err, 'nil key', m)\n"
        "  v, err = call('') eq(v, nil, m) eq(err, 'empty key', m)\n"
        "  v, err = call(string.rep('k', 65536)) eq(err, 'key too long', m)\n"
        "end\n"
        "local ok, err = pcall(dogs.lpop, dogs, 'l', 1)\n"
        "assert(not ok and err:find('expecting 2 arguments, but only seen 3'), err)\n"
        "ok, err = pcall(dogs.rpush, dogs, 'l')\n"
        "assert(not ok and err:find('expecting 3 arguments, but only seen 2'), err)\n"
        "local long = string.rep('k', 65535)\n"
        "eq(dogs:set(long, 'v'), true) eq(dogs:get(long), 'v')\n"
        "ok, err = pcall(dogs.get, 'k') assert(not ok and err:find('bad \"zone\" argument'), err)\n"
        "ok, err = pcall(function() dogs:set('k', 1, -1) end)\n"
        "assert(not ok and err:find('^%[string .-%]:%d+: bad \"exptime\" argument$'),\n"
        "       'placed at the caller: ' .. err)\n"
        "ok, err = pcall(dogs.expire, dogs, 'k')\n"
        "assert(not ok and err:find('bad \"exptime\" argument'), err)\n"
        "eq(type(getmetatable(dogs)), 'table') eq(tostring(dogs), 'lua_shared_dict: dogs')\n");
}
END_TEST

START_TEST(test_entries_expire_on_the_clock_with_ms_precision)
{
    run("dogs:set('k', 'v', 1.5)\n"
        "eq(dogs:ttl('k'), 1.5)\n"
        "advance(1499) eq(dogs:get('k'), 'v') eq(dogs:ttl('k'), 0.001)\n"
        "advance(1) eq(dogs:get('k'), nil) eq(dogs:ttl('k'), 0)\n"
        "advance(250) eq(dogs:ttl('k'), -0.25, 'expired, not yet dropped')\n"
        "eq(dogs:get_stale('k'), 'v', 'a get leaves an expired entry for get_stale')\n"
        "dogs:set('s', 'old', 1, 7) advance(1000)\n"
        "local v, flags, stale = dogs:get_stale('s')\n"
        "eq(v, 'old') eq(flags, 7) eq(stale, true)\n"
        "dogs:set('f', 'fresh')\n"
        "v, flags, stale = dogs:get_stale('f') eq(v, 'fresh') eq(flags, nil) eq(stale, false)\n"
        "eq(n(dogs:get_stale('f')), 3) eq(dogs:get_stale('none'), nil)\n"
        "eq(dogs:ttl('f'), 0, 'no expiry')\n"
        "local ttl, err = dogs:ttl('none') eq(ttl, nil) eq(err, 'not found')\n"
        "eq(dogs:expire('f', 2), true) eq(dogs:ttl('f'), 2)\n"
        "advance(2000) eq(dogs:get('f'), nil)\n"
        "dogs:set('g', 1, 5) eq(dogs:expire('g', 0), true) eq(dogs:ttl('g'), 0)\n"
        "advance(10000) eq(dogs:get('g'), 1)\n"
        "local ok, err = dogs:expire('none', 1) eq(ok, nil) eq(err, 'not found')\n"
        "dogs:set('z', 1, 0.0004) eq(dogs:ttl('z'), 0, 'under a millisecond: never')\n"
        "for i = 1, 5 do dogs:set('e' .. i, i, 1) end dogs:set('keep', 1)\n"
        "advance(1000)\n"
        "eq(dogs:flush_expired(2), 2) eq(dogs:flush_expired(), 3) eq(dogs:flush_expired(), 0)\n"
        "eq(dogs:get('keep'), 1)\n");
}
END_TEST

START_TEST(test_incr_counts_creates_from_init_and_refuses_what_is_no_number)
{
    run("local v, err = dogs:incr('c', 1) eq(v, nil) eq(err, 'not found')\n"
        "eq(n(dogs:incr('c', 1)), 2)\n"
        "local v, err, forcible = dogs:incr('c', 5, 10)\n"
        "eq(v, 15) eq(err, nil) eq(forcible, false)\n"
        "v = dogs:incr('c', -0.5) eq(v, 14.5) eq(n(dogs:incr('c', 0)), 1)\n"
        "eq(dogs:get('c'), 14.5)\n"
        "dogs:set('n', 3) eq(dogs:incr('n', '2'), 5)\n"
        "dogs:set('s', 'x') v, err = dogs:incr('s', 1) eq(v, nil) eq(err, 'not a number')\n"
        "v, err = dogs:incr('s', 1, 0) eq(err, 'not a number')\n"
        "dogs:set('b', true) v, err = dogs:incr('b', 1) eq(err, 'not a number')\n"
        "eq(dogs:incr('t', 1, 0, 2), 1) eq(dogs:ttl('t'), 2)\n"
        "advance(1000) eq(dogs:incr('t', 1, 0, 2), 2)\n"
        "eq(dogs:ttl('t'), 1, 'init_ttl only creates')\n"
        "advance(1000) eq(dogs:get('t'), nil) eq(dogs:incr('t', 1, 100), 101)\n"
        "dogs:set('e', 1, 1) advance(1000) v, err = dogs:incr('e', 1) eq(err, 'not found')\n"
        "local ok, e = pcall(dogs.incr, dogs, 'x', 1, nil, 1)\n"
        "assert(not ok and e:find('must provide \"init\" when providing \"init_ttl\"'), e)\n"
        "ok, e = pcall(dogs.incr, dogs, 'x', 1, 0, -1)\n"
        "assert(not ok and e:find('bad \"init_ttl\" argument'), e)\n"
        "ok, e = pcall(dogs.incr, dogs, 'x', 1, {})\n"
        "assert(not ok and e:find('bad init arg: number expected, got table'), e)\n"
        "ok, e = pcall(dogs.incr, dogs, 'x', 'abc', 0)\n"
        "assert(not ok and e:find(\"cannot convert 'nil' to 'double'\"), e)\n");
}
END_TEST

START_TEST(test_a_full_zone_forces_out_the_least_recently_used)
{
    run("local forced_at\n"
        "for i = 1, 1000 do\n"
        "  local ok, err, forcible = tiny:set('k' .. i, string.rep('v', 100))\n"
        "  eq(ok, true, 'set ' .. i)\n"
        "  if forcible then forced_at = i break end\n"
        "  if i % 2 == 0 then tiny:get('k1') end\n"
        "end\n"
        "assert(forced_at and forced_at > 10, 'an 8k zone holds some entries, then forces')\n"
        "eq(tiny:get('k1'), string.rep('v', 100), 'the entry read often stays')\n"
        "eq(tiny:get('k2'), nil, 'the least recently used went')\n"
        "local ok, err, forcible = tiny:safe_set('other', string.rep('w', 100))\n"
        "eq(ok, false) eq(err, 'no memory') eq(forcible, false)\n"
        "ok, err = tiny:safe_add('other', string.rep('w', 100)) eq(err, 'no memory')\n"
        "ok, err, forcible = tiny:set('huge', string.rep('h', 20000))\n"
        "eq(ok, false) eq(err, 'no memory') eq(forcible, false)\n"
        "local v, err, forcible = tiny:incr('c', 1, 0) eq(v, 1) eq(forcible, true)\n"
        "tiny:flush_all() eq(tiny:get('k1'), nil)\n"
        "ok, err, forcible = tiny:set('a', 'b') eq(forcible, false)\n");
}
END_TEST

START_TEST(test_get_keys_flush_all_capacity_and_free_space)
{
    run("for i = 1, 2000 do dogs:set('k' .. i, i) end\n"
        "eq(#dogs:get_keys(), 1024, 'default max_count')\n"
        "eq(#dogs:get_keys(0), 2000, '0: all') eq(#dogs:get_keys(3), 3)\n"
        "eq(#dogs:get_keys(-1), 2000, 'negative: all')\n"
        "local seen = {} for _, k in ipairs(dogs:get_keys(0)) do seen[k] = true end\n"
        "for i = 1, 2000 do assert(seen['k' .. i], i) end\n"
        "dogs:set('x', 1, 1) advance(1000) eq(#dogs:get_keys(0), 2000, 'expired keys left out')\n"
        "eq(dogs:capacity(), 1048576) eq(tiny:capacity(), 8192)\n"
        "local free = dogs:free_space()\n"
        "dogs:set('big', string.rep('b', 100000)) assert(dogs:free_space() < free - 90000)\n"
        "dogs:delete('big') eq(dogs:free_space(), free)\n"
        "eq(n(dogs:flush_all()), 0)\n"
        "eq(dogs:get('k1'), nil) eq(#dogs:get_keys(0), 0)\n"
        "assert(dogs:free_space() > free)\n"
        "local long = string.rep('y', 60000)\n"
        "for i = 1, 10 do dogs:set(long .. i, i) end eq(#dogs:get_keys(0), 10)\n");
}
END_TEST

START_TEST(test_lists_push_pop_from_both_ends_and_refuse_other_values)
{
    run("eq(dogs:lpush('l', 'b'), 1) eq(dogs:lpush('l', 'a'), 2) eq(dogs:rpush('l', 3), 3)\n"
        "eq(dogs:llen('l'), 3)\n"
        "eq(dogs:lpop('l'), 'a') eq(dogs:rpop('l'), 3) eq(type(dogs:rpush('l', 1.5)), 'number')\n"
        "eq(dogs:rpop('l'), 1.5) eq(dogs:rpop('l'), 'b') eq(dogs:llen('l'), 0)\n"
        "eq(dogs:lpop('l'), nil) eq(#dogs:get_keys(0), 0, 'an emptied list is gone')\n"
        "dogs:set('s', 'v')\n"
        "for _, m in ipairs{'lpush', 'rpush'} do\n"
        "  local v, err = dogs[m](dogs, 's', 1) eq(v, nil) eq(err, 'value not a list', m)\n"
        "end\n"
        "for _, m in ipairs{'lpop', 'rpop', 'llen'} do\n"
        "  local v, err = dogs[m](dogs, 's') eq(v, nil) eq(err, 'value not a list', m)\n"
        "end\n"
        "local v, err = dogs:lpush('l', {}) eq(v, nil) eq(err, 'bad value type')\n"
        "v, err = dogs:lpush('l', true) eq(err, 'bad value type')\n"
        "dogs:rpush('l', 'x')\n"
        "v, err = dogs:get('l') eq(v, nil) eq(err, 'value is a list')\n"
        "v, err = dogs:get_stale('l') eq(v, nil) eq(err, 'value is a list')\n"
        "v, err = dogs:incr('l', 1) eq(err, 'not a number')\n"
        "eq(dogs:expire('l', 1), true) advance(1000) eq(dogs:llen('l'), 0)\n"
        "eq(dogs:rpush('l', 'y'), 1, 'an expired list starts afresh')\n"
        "dogs:set('l', 'plain') eq(dogs:get('l'), 'plain')\n"
        "for i = 1, 5000 do dogs:rpush('q', i) dogs:lpush('q', -i) end\n"
        "eq(dogs:llen('q'), 10000)\n"
        "for i = 5000, 1, -1 do eq(dogs:lpop('q'), -i) end\n"
        "for i = 5000, 1, -1 do eq(dogs:rpop('q'), i) end\n"
        "eq(dogs:llen('q'), 0)\n"
        "local free = dogs:free_space()\n"
        "for i = 1, 2000 do dogs:rpush('w', string.rep('w', 100)) end\n"
        "for i = 1, 1999 do dogs:lpop('w') end\n"
        "eq(dogs:llen('w'), 1) assert(dogs:free_space() >= free - 8192, 'a drained list shrinks')\n"
        "eq(dogs:rpush('w', 'a\\0b'), 2) eq(dogs:rpop('w'), 'a\\0b')\n");
}
END_TEST

START_TEST(test_a_push_on_a_full_zone_answers_no_memory_and_keeps_the_list)
{
    run("local ok, err, i = true, nil, 0\n"
        "repeat i = i + 1 ok, err = tiny:rpush('l', string.rep('x', 200)) until not ok\n"
        "eq(err, 'no memory')\n"
        "eq(tiny:llen('l'), i - 1, 'the list as it was')\n"
        "eq(tiny:lpop('l'), string.rep('x', 200))\n");
}
END_TEST

START_TEST(test_a_reload_keeping_name_and_size_keeps_the_dictionary)
{
    run("dogs:set('kept', 'yes') tiny:set('t', 1)\n");
    rp_cycle_t *next = open_cycle("http {\n"
                                  "    lua_shared_dict dogs 1m;\n"
                                  "    lua_shared_dict tiny 16k;\n"
                                  "}\n",
                                  cycle);
    lua_State *old = L;
    L = vm_of(next);
    run(prelude);
    run("eq(dogs:get('kept'), 'yes') eq(tiny:get('t'), nil, 'a new size starts empty')\n"
        "eq(tiny:capacity(), 16384)\n"
        "dogs:set('new', 1)\n");
    lua_close(L);
    L = old;
    run("eq(dogs:get('new'), 1, 'both generations share the zone')\n");
    rp_cycle_destroy(next);
}
END_TEST

START_TEST(test_the_directive_refuses_bad_declarations_with_file_and_line)
{
    ut_expect_error("http {\n    lua_shared_dict dogs 1m;\n    lua_shared_dict dogs 1m;\n}\n",
                    "@/rampart.conf:3: \"lua_shared_dict\": lua_shared_dict \"dogs\" is already "
                    "defined as \"dogs\"");
    ut_expect_error("http {\n    lua_shared_dict dogs 8191;\n}\n",
                    "@/rampart.conf:2: \"lua_shared_dict\": invalid lua shared dict size \"8191\"");
    ut_expect_error("http {\n    lua_shared_dict dogs xx;\n}\n",
                    "@/rampart.conf:2: \"lua_shared_dict\": invalid lua shared dict size \"xx\"");
    ut_expect_error("http {\n    lua_shared_dict \"\" 1m;\n}\n",
                    "@/rampart.conf:2: \"lua_shared_dict\": invalid lua shared dict name \"\"");
    rp_cycle_t *c = ut_load("lua_shared_dict dogs 1m;\n");
    ck_assert_ptr_null(c);
    c = ut_load("http {\n    ssl_session_cache shared:dogs:1m;\n    lua_shared_dict dogs 1m;\n}\n");
    ck_assert_ptr_null(c);
    ck_assert_msg(strstr(ut_err, "rampart.conf:3:") && strstr(ut_err, "already used by"), "%s",
                  ut_err);
}
END_TEST

/* ---- processes ---- */

static rp_shm_zone_t *zone_named(const char *name)
{
    for (size_t i = 0; i < cycle->shm_zones.nelts; i++) {
        rp_shm_zone_t *z = RP_ARRAY_AT(&cycle->shm_zones, rp_shm_zone_t *, i);
        if (strcmp(z->name, name) == 0)
            return z;
    }
    ck_abort_msg("no zone %s", name);
    return NULL;
}

START_TEST(test_a_process_dying_with_the_lock_leaves_the_dictionary_usable)
{
    run("dogs:set('k', 'before')\n");
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        rp_shm_lock(zone_named("dogs"));
        _exit(0); /* holding it */
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    run("eq(dogs:get('k'), 'before', 'the table was checked and kept')\n"
        "eq(dogs:set('k', 'after'), true) eq(dogs:get('k'), 'after')\n");
}
END_TEST

enum { CHILDREN = 4, INCRS = 5000 };

START_TEST(test_forked_processes_count_exactly_and_one_add_wins)
{
    pid_t pids[CHILDREN];
    for (int i = 0; i < CHILDREN; i++) {
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0) {
            char code[1024];
            snprintf(code, sizeof(code),
                     "dogs:incr('ready', 1, 0)\n"
                     "while dogs:get('ready') < %d do end\n"
                     "local won = dogs:add('winner', %d)\n"
                     "if won then dogs:incr('wins', 1, 0) end\n"
                     "for i = 1, %d do\n"
                     "  local v, err = dogs:incr('n', 1, 0)\n"
                     "  if not v then os.exit(2) end\n"
                     "  dogs:rpush('log', %d)\n"
                     "end\n",
                     CHILDREN, i, INCRS, i);
            if (luaL_loadstring(L, code) != 0 || lua_pcall(L, 0, 0, 0) != 0)
                _exit(1);
            _exit(0);
        }
    }
    for (int i = 0; i < CHILDREN; i++) {
        int status;
        ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d failed", i);
    }
    char code[512];
    snprintf(code, sizeof(code),
             "eq(dogs:get('n'), %d) eq(dogs:get('wins'), 1)\n"
             "local w = dogs:get('winner') assert(w >= 0 and w < %d)\n"
             "eq(dogs:llen('log'), %d)\n"
             "local per = {}\n"
             "for i = 1, %d do local c = dogs:lpop('log') per[c] = (per[c] or 0) + 1 end\n"
             "for c = 0, %d do eq(per[c], %d) end\n",
             CHILDREN * INCRS, CHILDREN, CHILDREN * INCRS, CHILDREN * INCRS, CHILDREN - 1, INCRS);
    run(code);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("lua_shdict");
    TCase *tc = tcase_create("dict");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120); /* sanitizers on two shared cores */
    tcase_add_test(tc, test_values_come_back_with_their_lua_type_and_flags);
    tcase_add_test(tc, test_tables_are_stored_encoded_and_come_back_as_new_tables);
    tcase_add_test(tc, test_add_replace_and_nil_values_answer_as_openresty);
    tcase_add_test(tc, test_bad_keys_and_arguments_are_refused_as_openresty);
    tcase_add_test(tc, test_entries_expire_on_the_clock_with_ms_precision);
    tcase_add_test(tc, test_incr_counts_creates_from_init_and_refuses_what_is_no_number);
    tcase_add_test(tc, test_a_full_zone_forces_out_the_least_recently_used);
    tcase_add_test(tc, test_get_keys_flush_all_capacity_and_free_space);
    tcase_add_test(tc, test_lists_push_pop_from_both_ends_and_refuse_other_values);
    tcase_add_test(tc, test_a_push_on_a_full_zone_answers_no_memory_and_keeps_the_list);
    tcase_add_test(tc, test_a_reload_keeping_name_and_size_keeps_the_dictionary);
    tcase_add_test(tc, test_the_directive_refuses_bad_declarations_with_file_and_line);
    tcase_add_test(tc, test_a_process_dying_with_the_lock_leaves_the_dictionary_usable);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_forked_processes_count_exactly_and_one_add_wins);
    suite_add_tcase(s, tc);
    return ut_run(s);
}
