-- Run by test_lua_vm.c twice: in a plain LuaJIT state (LuaJIT's own string library) and in
-- the policy sandbox (core/policy/lua_pattern.c). Returns one line per case and function; the two
-- reports must be identical. Errors compare as "ERR" only (the texts' prefixes differ).
local cases = {
  { "hello world", "o w" }, { "hello world", "l+" }, { "hello", "l*" }, { "hello", "^h" },
  { "hello", "^e" }, { "hello", "o$" }, { "hello$", "o%$" }, { "hello", "$" }, { "", "" },
  { "abc", "" }, { "abc", "%a+" }, { " a1 b2 ", "%s*(%w+)%s*" },
  { "key = value", "(%w+)%s*=%s*(%w+)" }, { "THE (quick) fox", "%((%a+)%)" },
  { "f(a(b)c)d", "%b()" }, { "f(a(b)c", "%b()" }, { "THE (quick) fox", "%f[%a]%a+" },
  { "hello", "()ll()" }, { "aaa", "a-b" }, { "aaab", "a-b" }, { "aaa", "^a-$" },
  { "abcabc", "(abc)%1" }, { "abcabd", "(ab.)%1" }, { "x=1, y=2", "(%w+)=(%w+)" },
  { "[test]", "[%[%]]" }, { "a-b", "[a-]" }, { "a]b", "[]]" }, { "a^b", "[%^]" },
  { "a^b", "[^^]" }, { "0x1F", "%x+" }, { "tab\there", "%c" }, { "UPPER lower", "%u+" },
  { "UPPER lower", "%l+" }, { "punct!?", "%p+" }, { "a.b", "%." }, { "a.b", "." },
  { "x", "[a-z" }, { "x", "%" }, { "x", "(x" }, { "x", "x)" }, { "x", "%1" }, { "x", "%b" },
  { "x", "%fx" }, { "\0a\0", "%z" }, { "a\0b", "%Z+" }, { "abc", "[^%a]" }, { "ab12", "[%d]+" },
  { "hello world from lua", "(%w+) (%w+)" }, { "  trim  ", "^%s*(.-)%s*$" },
  { "a,b,,c", "([^,]*)" }, { "abc", "b", -1 }, { "abc", "b", -2 }, { "abc", "b", 10 },
  { "abc", "", 10 }, { "abc", "", 4 }, { "abc", "a", 0 }, { "abc", "c", -10 },
  { "aXb", "%u?b" }, { "ab", "a?b" }, { "b", "a?b" }, { "ab", "a+?" }, { "a.b.c", "%.", 3 },
  { "one two  three", "%S+" }, { "CamelCaseWord", "%u%l*" }, { "2024-01-15", "(%d+)-(%d+)-(%d+)" },
  { "a1b2c3", "%a%d" }, { "((a))", "%b()" }, { "[[x]]", "%b[]" }, { "a+b", "a+b" },
  { "a+b", "a%+b" }, { "ab", "a*" }, { "", "a*" }, { "", "a+" }, { "", "^$" }, { "x", "^$" },
  { "abc", "(a)(b)(c)" }, { "abc", "((a)(b))" }, { "abc", "()" }, { "abc", "(" .. ")" .. "b" },
  { "hello", "[lo]+" }, { "hello", "[^lo]+" }, { "Hello", "[A-Z][a-z]+" }, { "x-y", "[%w-]+" },
  { "a%b", "%%" }, { "é€", "[\128-\255]+" }, { "abc", "[a-c-]+" }, { "end.", "%.$" },
  { "mississippi", "ss" }, { "mississippi", "(ss)(i)" }, { "mississippi", "i(.-)i" },
  { "mississippi", "i(.*)i" }, { "aaa", "a-" }, { "aaa", "a-$" }, { "path/to/file.lua", "([^/]+)%.lua$" },
  { "k1=v1;k2=v2", "(%w+)=(%w+);?" }, { "THE END", "%f[%w]%w+" }, { "x", "[]" }, { "x", "[^]" },
  { "abc", "^(a)" }, { "abc", "^" }, { "aaa", "^a" }, { "hello", "l", 4 }, { "hello", "l", -2 },
  { ("a"):rep(40) .. "b", ".-.-b" }, { ("ab"):rep(10), "(ab)+" }, { "a.b", "a.b", 1, true },
  { "a+b", "+", 1, true }, { "x^y", "^y", 1, true }, { "abc", "", 2, true }, { "", "", 1, true },
  { "12 apples", "^(%d+)%s+(%a+)$" },
}

local function show(...)
  local n = select("#", ...)
  local out = {}
  for i = 1, n do
    local v = select(i, ...)
    out[i] = type(v) == "string" and string.format("%q", v) or tostring(v)
  end
  return table.concat(out, ",")
end

local function try(f, ...)
  local r = { pcall(f, ...) }
  if not r[1] then return "ERR" end
  return show(unpack(r, 2, table.maxn(r)))
end

local function gmatch_all(s, p)
  local out, n = {}, 0
  for a, b, c in string.gmatch(s, p) do
    n = n + 1
    out[n] = show(a, b, c)
    if n >= 60 then break end
  end
  return table.concat(out, "|")
end

local lines = {}
for i, c in ipairs(cases) do
  local s, p, init, plain = c[1], c[2], c[3], c[4]
  local tag = string.format("%d %q %q %s %s: ", i, s, p, tostring(init), tostring(plain))
  lines[#lines + 1] = tag .. "find " .. try(string.find, s, p, init, plain)
  lines[#lines + 1] = tag .. "method " .. try(function() return s:find(p, init, plain) end)
  if not plain then
    lines[#lines + 1] = tag .. "match " .. try(string.match, s, p, init)
    lines[#lines + 1] = tag .. "gmatch " .. try(gmatch_all, s, p)
    lines[#lines + 1] = tag .. "gsub0 " .. try(string.gsub, s, p, "<%0>")
    lines[#lines + 1] = tag .. "gsub1 " .. try(string.gsub, s, p, "[%1%%]")
    lines[#lines + 1] = tag .. "gsubn " .. try(string.gsub, s, p, "#", 1)
    lines[#lines + 1] = tag .. "gsubf " .. try(string.gsub, s, p, function(a) return a and a:upper() end)
    lines[#lines + 1] = tag .. "gsubt " .. try(string.gsub, s, p, { a = "A", hello = false, [""] = "E" })
  end
end
-- replacement values and argument errors
lines[#lines + 1] = "badrepl " .. try(string.gsub, "abc", "%w", function() return {} end)
lines[#lines + 1] = "numrepl " .. try(string.gsub, "abc", "%w", 7)
lines[#lines + 1] = "boolrepl " .. try(string.gsub, "abc", "%w", true)
lines[#lines + 1] = "numsubj " .. try(string.find, 12345, "3")
lines[#lines + 1] = "numpat " .. try(string.gsub, 12345, 3, "x")
lines[#lines + 1] = "captures32 " .. try(string.find, ("a"):rep(40), ("(a)"):rep(32))
lines[#lines + 1] = "captures33 " .. try(string.find, ("a"):rep(40), ("(a)"):rep(33))
lines[#lines + 1] = "posrepl " .. try(string.gsub, "abc", "()b", "%1")
return table.concat(lines, "\n")
