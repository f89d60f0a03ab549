# Turns LinuxKit metadata (the "config" file of the metadata CD-ROM) into files under `root`,
# as LinuxKit's metadata package does: {"NAME": {"entries": {...}}} is a directory,
# {"NAME": {"content": "...", "perm": "0600"}} a file. Anything that is not a JSON object is
# kept whole as root/userdata. Written in awk because the image has only busybox.
BEGIN { RS = "\001"; if (root == "") root = "/run/config" }
{ text = text $0 }
END {
  s = text; n = length(s); pos = 1
  ws()
  if (substr(s, pos, 1) != "{") { printf "%s", s > (root "/userdata"); close(root "/userdata"); exit 0 }
  entries(root)
}

function fail(msg) { print "linuxkit-metadata: " msg " at offset " pos > "/dev/stderr"; exit 1 }
function ws() { while (pos <= n && index(" \t\r\n", substr(s, pos, 1)) > 0) pos++ }
function expect(c) { ws(); if (substr(s, pos, 1) != c) fail("expected '" c "'"); pos++ }

function hexval(h,   i, v) {
  v = 0
  for (i = 1; i <= length(h); i++) v = v * 16 + index("0123456789abcdef", tolower(substr(h, i, 1))) - 1
  return v
}
function utf8(cp) {
  if (cp < 128) return sprintf("%c", cp)
  if (cp < 2048) return sprintf("%c%c", 192 + int(cp / 64), 128 + cp % 64)
  return sprintf("%c%c%c", 224 + int(cp / 4096), 128 + int(cp / 64) % 64, 128 + cp % 64)
}
function str(   out, c) {
  expect("\"")
  out = ""
  while (pos <= n) {
    c = substr(s, pos, 1)
    if (c == "\"") { pos++; return out }
    if (c == "\\") {
      pos++; c = substr(s, pos, 1)
      if (c == "n") out = out "\n"
      else if (c == "t") out = out "\t"
      else if (c == "r") out = out "\r"
      else if (c == "b") out = out "\b"
      else if (c == "f") out = out "\f"
      else if (c == "u") { out = out utf8(hexval(substr(s, pos + 1, 4))); pos += 4 }
      else out = out c
    } else out = out c
    pos++
  }
  fail("unterminated string")
}
# Skips a value this format does not use (numbers, booleans, null, arrays, objects).
function skip(   depth, c) {
  ws(); c = substr(s, pos, 1)
  if (c == "\"") { str(); return }
  if (c == "{" || c == "[") {
    depth = 0
    do {
      c = substr(s, pos, 1)
      if (c == "\"") { str(); continue }
      if (c == "{" || c == "[") depth++
      if (c == "}" || c == "]") depth--
      pos++
    } while (depth > 0 && pos <= n)
    return
  }
  while (pos <= n && index(",}] \t\r\n", substr(s, pos, 1)) == 0) pos++
}
function safe(name) {
  if (name == "" || name == "." || name == ".." || index(name, "/") > 0 || index(name, "'") > 0) fail("bad entry name '" name "'")
  return name
}
# An object of NAME -> entry, written below dir.
function entries(dir,   name, c) {
  expect("{"); ws()
  if (substr(s, pos, 1) == "}") { pos++; return }
  while (1) {
    ws(); name = safe(str()); expect(":")
    entry(dir "/" name)
    ws(); c = substr(s, pos, 1); pos++
    if (c == "}") return
    if (c != ",") fail("expected ',' or '}'")
  }
}
function entry(path,   key, perm, content, has_content, made_dir, c) {
  expect("{"); ws()
  perm = ""; has_content = 0; made_dir = 0
  if (substr(s, pos, 1) == "}") { pos++; return }
  while (1) {
    ws(); key = str(); expect(":")
    if (key == "perm") { ws(); perm = str() }
    else if (key == "content") { ws(); content = str(); has_content = 1 }
    else if (key == "entries") { system("mkdir -p '" path "'"); made_dir = 1; entries(path) }
    else skip()
    ws(); c = substr(s, pos, 1); pos++
    if (c == "}") break
    if (c != ",") fail("expected ',' or '}'")
  }
  if (has_content) { printf "%s", content > path; close(path) }
  if (perm != "" && (has_content || made_dir)) system("chmod " perm " '" path "'")
}
