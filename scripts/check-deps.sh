#!/usr/bin/env bash
# check-deps.sh [PROJECT_ROOT]: the dependency guard (ctest deps.closure).
#
# Fails when the project uses something a fresh Debian 12 would not have after
# scripts/install-deps.sh:
#   - a system header #included by core/, tests/ or bench/ (*.c, *.h), or
#   - a program called by scripts/, tests/ or bench/ (shell command positions, `command -v X`,
#     `for tool in a b c`, Node's spawn/execFile/wrapper, CMake's find_program, .busted),
# whose Debian package (dpkg -S on the header, or on the program's path) is neither named in a
# PKGS="..." list of install-deps.sh nor installed along with them.
#
# "Installed along with them" is what apt would install on an EMPTY system: apt-get --simulate
# against an empty dpkg status, for the Priority: required / Essential packages of a minimal
# Debian (what debootstrap --variant=minbase gives) plus the PKGS lists. Unlike
# `apt-cache depends --recurse`, this follows only the alternative apt really picks.
# Headers of core/ and the programs of scripts/run.sh must come from the plain mode (the
# README's first command); everything else from the union of every mode.
#
# Exit 0: all covered. 1: something is not (each printed with the file using it and the
# package to add), or install-deps.sh names a package apt does not know, or the apt cache is
# empty/stale (run `sudo apt-get update`). 77: cannot check here (no dpkg/apt: not Debian).
# Needs no root and no network; about 15 s.
set -uo pipefail
export LC_ALL=C

root=$(cd "${1:-.}" && pwd) || exit 1
script=$root/scripts/install-deps.sh
say() { printf '%s\n' "$*"; }
fail=0
problem() { say "FAIL: $*"; fail=1; }

for t in dpkg dpkg-query apt-get perl; do
  command -v "$t" >/dev/null 2>&1 || { say "check-deps: $t not found: not a Debian system, nothing checked"; exit 77; }
done
[[ -f $script ]] || { say "check-deps: no $script"; exit 1; }

# ---- the PKGS lists of install-deps.sh ---------------------------------------------------
# Every PKGS="..." / PKGS='...' assignment (continuation lines joined, "$PKGS" / "${PKGS}"
# dropped). The first one is the plain mode; all of them together are the union.
read_lists() {
  perl -0777 -ne '
    s/^[ \t]*#.*$//mg;                            # comments
    s/\\\n/ /g;                                   # join continuation lines
    while (/\bPKGS\+?=(["\x27])(.*?)\1/sg) {
      (my $l = $2) =~ s/\$\{?PKGS\}?//g;
      print join(" ", grep { /^[a-z0-9][a-z0-9.+-]+$/ } split /\s+/, $l), "\n";
    }' "$script"
}
mapfile -t lists < <(read_lists)
[[ ${#lists[@]} -gt 0 && -n ${lists[0]} ]] || { say "check-deps: no PKGS=\"...\" list in $script"; exit 1; }
base_pkgs=${lists[0]}
all_pkgs=$(printf '%s\n' "${lists[@]}" | tr ' ' '\n' | sed '/^$/d' | sort -u | tr '\n' ' ')

# ---- what a fresh machine has after install-deps.sh -------------------------------------
# CHECK_DEPS_APT_LISTS: another apt lists folder (tests/deps/check-deps-test.sh, an empty one)
lists_dir=${CHECK_DEPS_APT_LISTS:-/var/lib/apt/lists}
shopt -s nullglob
pkgfiles=("$lists_dir"/*_Packages "$lists_dir"/*_Packages.*)
if [[ ${#pkgfiles[@]} -eq 0 ]]; then
  say "FAIL: the apt cache is empty (no $lists_dir/*_Packages): run \`sudo apt-get update\` and check again"
  exit 1
fi
# the minimal system: Priority: required and Essential: yes (debootstrap's minbase)
minbase=$(for f in "${pkgfiles[@]}"; do /usr/lib/apt/apt-helper cat-file "$f" 2>/dev/null; done |
          awk '/^Package: /{p=$2} /^(Priority: required|Essential: yes)/{print p}' | sort -u | tr '\n' ' ')
[[ -n $minbase ]] || { say "FAIL: no Priority: required package in the apt cache: run \`sudo apt-get update\`"; exit 1; }

empty=$(mktemp)
tmpd=$(mktemp -d)
trap 'rm -rf "$empty" "$tmpd"' EXIT
# Results are cached per package list and apt lists state (the answer depends on nothing
# else), so a second run (the sanitizer build's ctest) takes a second, not apt's solver time.
cache_dir=${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/aivo-gw/check-deps
lists_state=$(stat -c '%n %s %Y' "${pkgfiles[@]}" | md5sum | cut -c1-32)
# Prints the packages apt would install on an empty system for "$@" (one a line).
closure() {
  local key
  key=$(printf '%s\n' "$lists_state" "$@" | md5sum | cut -c1-32)
  if [[ -s $cache_dir/$key ]]; then cat "$cache_dir/$key"; return 0; fi
  closure_apt "$@" >"$tmpd/$key" || { cat "$tmpd/$key"; return 1; }
  mkdir -p "$cache_dir" 2>/dev/null && cp "$tmpd/$key" "$cache_dir/$key.$$" 2>/dev/null &&
    mv "$cache_dir/$key.$$" "$cache_dir/$key" 2>/dev/null
  cat "$tmpd/$key"
}
closure_apt() {
  local out
  # shellcheck disable=SC2086
  if ! out=$(apt-get -s -qq -o Dir::State::status="$empty" -o Dir::State::Lists="$lists_dir" -o APT::Get::Show-Versions=false \
             install --no-install-recommends $minbase "$@" 2>&1); then
    local unknown
    unknown=$(sed -n "s/^E: Unable to locate package \(.*\)/\1/p; s/^E: Package '\(.*\)' has no installation candidate/\1/p" <<<"$out")
    if [[ -n $unknown ]]; then
      say "FAIL: scripts/install-deps.sh names packages apt does not know: $(tr '\n' ' ' <<<"$unknown")(a typo, or a stale apt cache: run \`sudo apt-get update\`)"
    else
      say "FAIL: apt cannot resolve the install-deps.sh packages on a fresh system:"
      say "$out" | grep -E '^( |E:)' | head -20
    fi
    return 1
  fi
  sed -n 's/^Inst \([^ ]*\).*/\1/p' <<<"$out" | sort -u
}
# both at once (each is a few seconds of apt's solver)
# shellcheck disable=SC2086
{ closure $base_pkgs >"$tmpd/base" || touch "$tmpd/base.failed"; } &
# shellcheck disable=SC2086
{ closure $all_pkgs >"$tmpd/all" || touch "$tmpd/all.failed"; } &
wait
if [[ -e $tmpd/base.failed || -e $tmpd/all.failed ]]; then
  if [[ -e $tmpd/base.failed ]]; then cat "$tmpd/base"; else cat "$tmpd/all"; fi
  exit 1
fi
base_closure=$(cat "$tmpd/base")
all_closure=$(cat "$tmpd/all")
declare -A in_base=() in_all=()
for p in $base_closure; do in_base[$p]=1; done
for p in $all_closure; do in_all[$p]=1; done

# ---- what the project uses --------------------------------------------------------------
# Records "kind<TAB>file<TAB>name<TAB>path" for every system header and program found.
incdirs=()
if command -v cc >/dev/null 2>&1; then
  mapfile -t incdirs < <(cc -xc -E -Wp,-v /dev/null 2>&1 >/dev/null | sed -n 's/^ \(\/.*\)/\1/p')
fi
[[ ${#incdirs[@]} -gt 0 ]] || incdirs=(/usr/local/include /usr/include/x86_64-linux-gnu /usr/include)
if command -v pkg-config >/dev/null 2>&1; then
  for d in $(pkg-config --cflags-only-I libwebsockets luajit hiredis libjwt 2>/dev/null); do incdirs+=("${d#-I}"); done
fi

# "file<TAB>header" for every #include <...> in core/, tests/, bench/
headers() {
  cd "$root" && find core tests bench \( -name node_modules -prune \) -o -type f \( -name '*.c' -o -name '*.h' \) -print 2>/dev/null |
    sort | while read -r f; do
      sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*<\([^>]*\)>.*/\1/p' "$f" | sort -u | sed "s|^|$f\t|"
    done
}

# "file<TAB>program" candidates in scripts/, tests/, bench/ (and the top CMakeLists.txt, .busted).
# A line holding "check-deps: optional" is skipped: a program used only when present.
candidates() {
  cd "$root" || return
  find scripts tests bench CMakeLists.txt .busted \( -name node_modules -prune \) -o -type f -print 2>/dev/null | sort |
  while read -r f; do
    case $f in
      *.sh) kind="sh" ;;
      *.js) kind=js ;;
      *CMakeLists.txt | *.cmake) kind=cmake ;;
      .busted) kind=busted ;;
      *) if head -c 64 "$f" | grep -qE '^#!.*\b(ba|da)?sh\b'; then kind="sh"; else continue; fi ;;
    esac
    perl -0777 -ne '
      BEGIN { $k = shift @ARGV; $f = shift @ARGV }
      sub out { for (map { "$_" } @_) { print "$f\t$_\n" if /^[a-z][a-z0-9_.+-]*$/ } }
      s/^.*check-deps: optional.*$//mg;
      if ($k eq "js") {
        out("$2") while /\b(spawn|spawnSync|execFile|execFileSync|execSync|exec)\(\s*[\x27"`]([a-z][\w.+-]*)/g;
        out("$1") while /wrapper:\s*\[\s*[\x27"]([a-z][\w.+-]*)/g;
        out("$1") while /command -v ([a-z][\w.+-]*)/g;
        out("node") if /process\.execPath/;
        exit;
      }
      if ($k eq "cmake") { out("$1") while /find_program\(\s*\w+\s+(?:NAMES\s+)?([a-z][\w.+-]*)/g; exit }
      if ($k eq "busted") { out("$1") while /\blua\s*=\s*"([a-z][\w.+-]*)"/g; exit }
      # shell: here-documents, comments and quoted text go (a quoted word becomes _q_, so
      # positions stay; the inside of "$(...)" stays: it is a command)
      s/<<-?\s*[\x27"]?(\w+)[\x27"]?([^\n]*)\n.*?\n\s*\1[ \t]*(?=\n|\z)/ _q_ $2/gs;
      s{(\x27[^\x27]*\x27)|("(?:\\.|[^"\\])*")|((?:^|(?<=[\s;(|&]))#[^\n]*)}{
        defined $1 ? " _q_ " : defined $2 ? ($2 =~ /\$\(/ ? substr($2, 1, -1) : " _q_ ") : " "
      }gem;
      for (split /\n/) {
        out("$1") while /command -v\s+([a-z][\w.+-]*)/g;
        if (/^\s*for\s+\w+\s+in\s+([^;]*)/) { out(split /\s+/, $1) }
        # command positions: line start, after | || && ; ( $( ` and the keywords before one
        for my $seg (split /\|\|?|&&|;|\$\(|\(|`|\b(?:then|do|else|elif|if|while|until)\b|!\s/) {
          my @w = split /\s+/, $seg; shift @w while @w && $w[0] eq "";
          while (@w && ($w[0] =~ /^\w+=/ || $w[0] =~ /^(sudo|\$SUDO|exec|nice|nohup|env|time|command|builtin)$/ || $w[0] =~ /^-/)) {
            shift @w;
          }
          if (@w && $w[0] =~ /^(timeout|taskset)$/) { out(shift @w); shift @w while @w && ($w[0] =~ /^-/ || $w[0] =~ /^[\d.,]+[smhd]?$/) }
          out($w[0]) if @w;
        }
      }' "$kind" "$f" "$f"
  done
}

records=()
while IFS=$'\t' read -r file h; do
  path=""
  for d in "${incdirs[@]}"; do [[ -e $d/$h ]] && { path=$d/$h; break; }; done
  if [[ -z $path ]]; then say "note: <$h> ($file) is not on this machine: not checked"; continue; fi
  records+=("header"$'\t'"$file"$'\t'"<$h>"$'\t'"$path")
done < <(headers | awk -F'\t' '!seen[($1 ~ /^core\// ? "core" : "other") FS $2]++')
while IFS=$'\t' read -r file prog; do
  # only real programs of the system: a builtin, keyword or function has no path, and a
  # per-user shim (~/.pyenv, ~/.local) is nothing a fresh machine would have either way
  path=$(PATH="$PATH:/usr/sbin:/sbin" command -v "$prog" 2>/dev/null) || continue
  case $path in /usr/* | /bin/* | /sbin/* | /opt/*) ;; *) continue ;; esac
  [[ $prog == sudo ]] && continue # install-deps.sh uses it only when not root; it cannot install it
  records+=("program"$'\t'"$file"$'\t'"$prog"$'\t'"$path")
done < <(candidates | sort -u)

# ---- who owns them: one dpkg -S for every path, its resolved path and the /bin <-> /usr/bin
# twin (Debian 12 merges /bin into /usr/bin while dpkg records the packaged name) ----------
variants() {
  local p=$1 r
  r=$(readlink -f "$p" 2>/dev/null || echo "$p")
  printf '%s\n' "$p" "$r"
  local x
  for x in "$p" "$r"; do
    case $x in
      /usr/bin/* | /usr/sbin/* | /usr/lib/*) echo "${x#/usr}" ;;
      /bin/* | /sbin/* | /lib/*) echo "/usr$x" ;;
    esac
  done
}
declare -A owner_of=()
mapfile -t allpaths < <(for r in "${records[@]}"; do variants "${r##*$'\t'}"; done | sort -u)
while IFS= read -r line; do
  [[ $line == "diversion by"* || $line != *": /"* ]] && continue
  pk=${line%%: /*}
  p=/${line#*: /}
  pk=$(sed 's/:[a-z0-9]*//g; s/,/ /g' <<<"$pk")
  owner_of[$p]="${owner_of[$p]:-} $pk"
done < <(dpkg -S "${allpaths[@]}" 2>/dev/null)

nheaders=0
nprog=0
for r in "${records[@]}"; do
  IFS=$'\t' read -r kind file name path <<<"$r"
  own=""
  while IFS= read -r v; do own="$own ${owner_of[$v]:-}"; done < <(variants "$path")
  read -r -a own <<<"$own"
  if [[ ${#own[@]} -eq 0 ]]; then
    say "note: $kind $name ($file) is $path, which no package owns (installed by hand?): not checked"
    continue
  fi
  [[ $kind == header ]] && nheaders=$((nheaders + 1)) || nprog=$((nprog + 1))
  # core/'s headers and scripts/run.sh's programs: the README's first command, the plain mode
  mode=all
  [[ $file == core/* || $file == scripts/run.sh ]] && mode=base
  ok=0
  for o in "${own[@]}"; do
    if [[ $mode == base && -n ${in_base[$o]:-} ]] || [[ $mode == all && -n ${in_all[$o]:-} ]]; then ok=1; fi
  done
  if [[ $ok -eq 0 ]]; then
    what="included by"
    [[ $kind == program ]] && what="called by"
    problem "$kind $name ($path, package ${own[0]}) is $what $file, but scripts/install-deps.sh$([[ $mode == base ]] && echo ' (plain mode)') neither installs nor pulls in ${own[0]}: add it to a PKGS list"
  fi
done

if [[ $fail -eq 0 ]]; then
  say "check-deps: OK: $nheaders system headers and $nprog program uses come from packages scripts/install-deps.sh installs or pulls in (plain mode: $(wc -l <<<"$base_closure") packages with a minimal Debian 12, all modes: $(wc -l <<<"$all_closure"))"
fi
exit $fail
