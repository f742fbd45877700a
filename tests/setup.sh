#!/bin/sh
# setup.sh - README's set-up leaves the host alone and says true things
# (TAP):
#   - tests/deps.sh, with a stand-in apt-get that records what it is
#     asked, installs only the build and run packages (README's first
#     command), and the test packages with --test (README's test
#     command); it calls no systemctl, service or invoke-rc.d, and while
#     each apt-get runs a policy-rc.d answers 101 (no service starts,
#     stops or restarts), which is gone afterwards; a policy-rc.d that
#     was there before is left as it was;
#   - configure, run as for an in-tree build, writes nothing to standard
#     error (core/ is a directory: no unguarded "rm -f core" in it);
#   - every file of the repository README and the guides in doc/ name
#     exists, every systemctl command in them, the manual pages and etc/
#     names the unit carechatd, and every variable `make run`
#     (tests/demo.py) reads from the environment is in README.
src=${CC_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
build=${CC_BUILDDIR:-$src}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$src/tests/tap.sh"

# ------------------------------------------------------------ deps.sh
# Stand-ins: apt-get logs its arguments and what policy-rc.d answers; a
# service manager command, if called, logs that; npm and sudo do nothing
# of consequence.
mkdir "$tmp/bin"
cat > "$tmp/bin/apt-get" <<'EOF'
#!/bin/sh
echo "apt-get $*" >> "$CC_DEPS_LOG"
case " $* " in
*" install "*)
    "$CC_POLICY_RC_D" postgresql start 2>/dev/null
    echo "policy-rc.d: $?" >> "$CC_DEPS_LOG" ;;
esac
EOF
for t in systemctl service invoke-rc.d deb-systemd-invoke; do
    printf '#!/bin/sh\necho "CALLED %s $*" >> "$CC_DEPS_LOG"\n' "$t" \
        > "$tmp/bin/$t"
done
printf '#!/bin/sh\n[ "$1" = root ] && echo /nonexistent\nexit 0\n' \
    > "$tmp/bin/npm"
printf '#!/bin/sh\nexec "$@"\n' > "$tmp/bin/sudo"
chmod +x "$tmp/bin/"*
TEST_ONLY="python3-websockets postgresql redis-server prometheus chromium
clang nodejs npm abigail-tools mandoc"

# deps ARGS...: run deps.sh with the stand-ins; its log in $tmp/log.
deps() {
    : > "$tmp/log"
    PATH="$tmp/bin:$PATH" CC_DEPS_LOG="$tmp/log" \
        CC_POLICY_RC_D="$tmp/policy-rc.d" sh "$src/tests/deps.sh" "$@" \
        >"$tmp/out" 2>&1 || echo "deps.sh $* failed: $(cat "$tmp/out")"
}
installed() { grep '^apt-get install' "$tmp/log" | tr ' ' '\n'; }

why=$(deps)
for p in build-essential autoconf pkg-config libevent-dev libcurl4-openssl-dev \
         libsystemd-dev python3; do
    installed | grep -qx "$p" || why="$why
$p is not installed"
done
for p in $TEST_ONLY; do
    installed | grep -qx "$p" && why="$why
$p is installed"
done
report "deps.sh installs what building and running need, nothing more" \
    "$(echo "$why" | sed '/^$/d')"
policy=$(grep '^policy-rc.d' "$tmp/log" | sort -u)
report "deps.sh: while apt-get installs, policy-rc.d says 101; then it goes" \
    "$([ "$policy" = "policy-rc.d: 101" ] || echo "answers: $policy"
       [ ! -e "$tmp/policy-rc.d" ] || echo "policy-rc.d left behind")"

why=$(deps --test)
for p in $TEST_ONLY; do
    case $p in nodejs|npm) continue ;; esac # only where npm is missing
    installed | grep -qx "$p" || why="$why
$p is not installed"
done
report "deps.sh --test installs what the tests need" \
    "$(echo "$why" | sed '/^$/d')"
report "deps.sh calls no systemctl, service or invoke-rc.d" \
    "$(grep '^CALLED' "$tmp/log")"

printf '#!/bin/sh\n# the host'"'"'s own\nexit 0\n' > "$tmp/policy-rc.d"
chmod 755 "$tmp/policy-rc.d"
cp "$tmp/policy-rc.d" "$tmp/policy-rc.d.before"
why=$(deps)
report "deps.sh leaves a policy-rc.d that was there as it was" \
    "$why$(cmp "$tmp/policy-rc.d.before" "$tmp/policy-rc.d" 2>&1)"

# ---------------------------------------------------------- configure
# configure, run whole as for an in-tree build (in a directory holding
# core/) in a scratch copy of what it reads, so this build's own files
# stay as they are (--no-create: it stops before writing Makefiles).
report "configure has no unguarded 'rm -f core' (core/ is a directory)" \
    "$(grep -n 'rm -f core' "$src/configure" | grep -v 'test -d core ||')"
mkdir -p "$tmp/tree/core"
cp -R "$src/configure" "$src/build-aux" "$src/Makefile.in" \
    "$src/ccbuild.h.in" "$src/carechat-plugin.pc.in" "$tmp/tree/"
cp "$src/core/main.c" "$tmp/tree/core/"
(cd "$tmp/tree" && ./configure --no-create >/dev/null 2>"$tmp/err") ||
    echo "configure failed" >> "$tmp/err"
report "configure writes nothing to standard error" "$(cat "$tmp/err")"

# -------------------------------------------------------------- README
# Repository paths in backquotes (README and the guides it sends readers
# to): they exist (as is, or the .in or .c they are made from).
docs="$src/README.md $(ls "$src"/doc/*.md)"
why=
# shellcheck disable=SC2086
for f in $(cat $docs | grep -o '`[^` ]*`' | tr -d '`' |
           grep -E '^(core|plugins|tests|doc|etc|www|man|include|bench)/|\.md$' |
           sort -u); do
    [ -e "$src/$f" ] || [ -e "$src/$f.in" ] || [ -e "$src/$f.c" ] ||
        why="$why $f"
done
report "every file README and doc/*.md name exists" \
    "${why:+missing:$why}"
report "every systemctl command names the unit carechatd" \
    "$(cat $docs "$src"/man/*.in "$src"/etc/*.in |
       grep -oE 'systemctl +(start|stop|restart|reload|status|enable|disable|edit)( +--now)? +[a-zA-Z0-9@._-]+' |
       grep -vE ' carechatd(\.service)?$')"
why=
for v in $(grep -oE 'environ(\.get\(|\[)"[A-Z_]+"' "$src/tests/demo.py" |
           grep -oE '[A-Z_]+' | grep -vx CC_BUILDDIR | sort -u); do
    grep -q "$v" "$src/README.md" || why="$why $v"
done
report "README documents what make run reads from the environment" \
    "${why:+not in README:$why}"

echo "1..$n"
exit $fail
