#!/bin/sh
# check.sh - the manual pages (TAP):
#   - each page in man/ lints clean with mandoc -Tlint and groff -ww, has
#     NAME, SYNOPSIS, DESCRIPTION and SEE ALSO, and renders with man -l;
#   - carechat.conf(5) and the configuration tables of the operators'
#     guide, doc/operations.md, document exactly the keys the parsers
#     accept, plugin by plugin.  The keys are read from the C sources:
#     strcmp(key, "...") (or e->key) and the { "key", ... offsetof / K_* }
#     tables, in core/server.c for [server], core/audit.c for [audit] (the
#     guide: its own "## Audit trail" table), core/retention.c for the
#     [storage] keys the host reads whatever the plugin (the page's
#     STORAGE section; the guide: "## Retention"), core/notifier.c for the
#     [notify] ones (the page's NOTIFY section; the guide: the "`[notify]`
#     key" table; checked once that file is there) and in plugins/<kind>-<name>/*.c for each plugin (with
#     plugins/common/claims.c and tokcache.c for the plugins that call
#     them).
# A missing mandoc, groff or man is a skip with the reason, a failure
# with CI=true.  The pages are the generated ones in $CC_BUILDDIR/man.
src=${CC_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${CC_BUILDDIR:-$src}
guide=doc/operations.md
pages="carechatd.8 carechat.conf.5 carechat-plugin.3 carechat-bench.1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$src/tests/tap.sh"

have() { command -v "$1" >/dev/null 2>&1; }

# ------------------------------------------------------------ the pages
for p in $pages; do
    f=$build/man/$p
    if [ ! -s "$f" ]; then
        report "$p was built" "$f is missing (run make)"
        continue
    fi
    if have mandoc; then
        # Style messages too, less the two that depend on what this
        # machine has installed (its mandoc.db, the pages we refer to).
        report "$p: mandoc -Tlint is clean" "$(mandoc -Tlint -W style "$f" \
            2>&1 | grep -v -e 'referenced manual not found' \
                           -e 'mandoc\.db')"
    else
        skip "$p: mandoc -Tlint is clean" \
             "mandoc not installed (Debian, Fedora, Alpine: mandoc)"
    fi
    if have groff; then
        # Less "can't break line": it depends on how long the configured
        # prefix is (distcheck's paths are long), not on the page.
        report "$p: groff -ww -mdoc is clean" \
            "$(LC_ALL=C groff -ww -z -mdoc "$f" 2>&1 \
               | grep -v "warning \[[^]]*\]: can't break line")"
    else
        skip "$p: groff -ww -mdoc is clean" \
             "groff not installed (Debian, Fedora: groff-base)"
    fi
    missing=
    for sh in NAME SYNOPSIS DESCRIPTION "SEE ALSO"; do
        grep -q "^\.Sh \"*$sh\"* *\$" "$f" || missing="$missing $sh"
    done
    report "$p has NAME, SYNOPSIS, DESCRIPTION, SEE ALSO" \
        "${missing:+missing:$missing}"
    if have man; then
        MANPAGER=cat PAGER=cat MANWIDTH=80 man -l "$f" \
            > "$tmp/render" 2> "$tmp/render.err"
        name=$(echo "$p" | sed 's/\.[0-9]$//')
        why=
        [ -s "$tmp/render" ] || why="man -l printed nothing:
$(cat "$tmp/render.err")"
        [ -z "$why" ] && ! grep -q "$name" "$tmp/render" &&
            why="the rendered page does not name $name"
        report "$p renders with man -l" "$why"
    else
        skip "$p renders with man -l" \
             "man not installed (Debian, Fedora: man-db; Alpine: mandoc)"
    fi
done

# ------------------------------------------------------------- the keys
# Lines "plugin key" in $tmp/parser: what each parser accepts.
# c_keys FILE...: the keys a config callback compares with.
c_keys() {
    awk '
    function take(line,    s, m) {
        s = line
        while (match(s, /strcmp\((e->)?key, "[a-z_][a-z0-9_]*"\)/)) {
            m = substr(s, RSTART, RLENGTH)
            sub(/^[^"]*"/, "", m); sub(/".*$/, "", m)
            print m
            s = substr(s, RSTART + RLENGTH)
        }
    }
    # { "key", ... } table rows whose row names an offsetof or a K_ kind
    # (on the line or the next): the tables of keys, not of units.
    function row(line, next_line,    m) {
        if (match(line, /\{ "[a-z_][a-z0-9_]*",/) &&
            (line next_line) ~ /offsetof|K_SIZE|K_DURATION|K_COUNT/) {
            m = substr(line, RSTART, RLENGTH)
            sub(/^[^"]*"/, "", m); sub(/".*$/, "", m)
            print m
        }
    }
    FNR == 1 && prev != "" { row(prev, ""); prev = "" }
    { if (prev != "") row(prev, $0); take($0); prev = $0 }
    END { if (prev != "") row(prev, "") }
    ' "$@" | sort -u
}

: > "$tmp/parser"
c_keys "$src/core/server.c" | sed 's/^/server /' >> "$tmp/parser"
c_keys "$src/core/audit.c" | sed 's/^/audit /' >> "$tmp/parser"
# [storage] keys the host reads whatever the plugin (retention).
c_keys "$src/core/retention.c" | grep -vx plugin |
    sed 's/^/storage-host /' >> "$tmp/parser"
# [notify] keys the host reads whatever the plugin (core/notifier.c).
notify_host=
if [ -f "$src/core/notifier.c" ]; then
    c_keys "$src/core/notifier.c" | grep -vx plugin |
        sed 's/^/notify-host /' >> "$tmp/parser"
    notify_host=notify-host
fi
for d in "$src"/plugins/storage-* "$src"/plugins/auth-* \
         "$src"/plugins/fanout-* "$src"/plugins/notify-*; do
    [ -d "$d" ] || continue
    name=${d##*/}
    name=${name#*-}
    set -- "$d"/*.c
    grep -q 'cc_claims_conf_set(' "$@" &&
        set -- "$@" "$src/plugins/common/claims.c"
    grep -q 'cc_tokcache_conf(' "$@" &&
        set -- "$@" "$src/plugins/common/tokcache.c"
    c_keys "$@" | sed "s/^/$name /" >> "$tmp/parser"
    echo "$name" >> "$tmp/plugins"
done
sort -u -o "$tmp/parser" "$tmp/parser"

# The extraction must still see the code's idioms: a parser rewritten in
# another style would otherwise check nothing.
why=
for want in "server listen" "server max_header_size" "server tls_key" \
            "sqlite path" "postgres conninfo" "jwt secret" "jwt user_claim" \
            "jwt token_cache" "jwks refresh_interval" "jwks leeway" \
            "redis db" "redis address" "storage-host retention" \
            "webhook url" "webhook max_in_flight"; do
    grep -qx "$want" "$tmp/parser" || why="$why
not found: $want"
done
[ "$(grep -c '^server ' "$tmp/parser")" -ge 25 ] ||
    why="$why
only $(grep -c '^server ' "$tmp/parser") [server] keys found in core/server.c"
report "keys extracted from the parsers ($(wc -l < "$tmp/parser") in all)" \
    "${why:+tests/man/check.sh no longer reads the parsers; update it:$why}"

# The page: ".It Cm key" under '.Ss "[server] ..."' or
# '.Ss "[section] plugin = NAME"'; "plugin" itself under each .Sh.
awk '
/^\.Sh / { cur = "sh"; sh = $2; next }
/^\.Ss / {
    if ($0 ~ /\[server\]/) cur = "server"
    else if ($0 ~ /\[audit\]/) cur = "audit"
    else if (match($0, /plugin = [a-z0-9_-]+/))
        cur = substr($0, RSTART + 9, RLENGTH - 9)
    else cur = "?"
    next
}
/^\.It Cm [a-z_][a-z0-9_]*/ {
    split($0, w, " ")
    k = w[3]; sub(/[^a-z0-9_].*$/, "", k)
    if (cur == "sh") print "section:" sh, k
    else print cur, k
}' "$build/man/carechat.conf.5" | sort -u > "$tmp/page"
# The host's [storage] keys are those of .Sh STORAGE but plugin.
grep '^section:STORAGE ' "$tmp/page" | grep -v ' plugin$' |
    sed 's/^section:STORAGE/storage-host/' >> "$tmp/page"
# So are those of .Sh NOTIFY for [notify].
grep '^section:NOTIFY ' "$tmp/page" | grep -v ' plugin$' |
    sed 's/^section:NOTIFY/notify-host/' >> "$tmp/page"

# doc/operations.md: the tables of "## Configuration" (and of "## Audit
# trail" and "## Retention"); a table's header names its
# plugin ("`[server]` key" or "`[storage] plugin = sqlite`"), the first
# cell of each row its keys; `*_claim` is a pattern.
awk '
/^## / {
    in_conf = ($0 == "## Configuration" || $0 == "## Audit trail" ||
               $0 == "## Retention")
    cur = ""
    next
}
!in_conf { next }
!/^\|/ { cur = ""; next }
/^\|[-| ]*$/ { next }
cur == "" {
    if ($0 ~ /^\| `\[server\]`/) cur = "server"
    else if ($0 ~ /^\| `\[audit\]`/) cur = "audit"
    else if ($0 ~ /^\| `\[storage\]` key/) cur = "storage-host"
    else if ($0 ~ /^\| `\[notify\]` key/) cur = "notify-host"
    else if (match($0, /^\| `\[[a-z]+\] plugin = [a-z0-9_-]+`/)) {
        h = substr($0, RSTART, RLENGTH)
        sub(/^.*plugin = /, "", h); sub(/`$/, "", h)
        cur = h
    }
    next
}
{
    cell = $0; sub(/^\| */, "", cell); sub(/ *\|.*$/, "", cell)
    while (match(cell, /`[^`]+`/)) {
        k = substr(cell, RSTART + 1, RLENGTH - 2)
        if (k ~ /^[a-z_*][a-z0-9_*]*$/) print cur, k
        cell = substr(cell, RSTART + RLENGTH)
    }
}' "$src/$guide" | grep -vx 'notify-host plugin' |
    sort -u > "$tmp/guide.raw"

# Expand the patterns against the parser's keys of the same plugin.
: > "$tmp/guide"
while read -r plugin key; do
    case $key in
    *\**)
        grep "^$plugin " "$tmp/parser" | while read -r _ k; do
            # shellcheck disable=SC2254
            case $k in $key) echo "$plugin $k" ;; esac
        done >> "$tmp/guide" ;;
    *) echo "$plugin $key" >> "$tmp/guide" ;;
    esac
done < "$tmp/guide.raw"
sort -u -o "$tmp/guide" "$tmp/guide"

# keys_of FILE PLUGIN: that plugin's keys, one a line.
keys_of() { grep "^$2 " "$1" | cut -d' ' -f2; }

# same WHAT PLUGIN FILE: FILE documents exactly the parser's keys.
same() {
    keys_of "$tmp/parser" "$2" > "$tmp/a"
    keys_of "$3" "$2" > "$tmp/b"
    report "$1: the keys of $2 are the ones its parser accepts" \
        "$( (comm -23 "$tmp/a" "$tmp/b" | sed 's/^/missing: /'
             comm -13 "$tmp/a" "$tmp/b" |
                 sed 's/^/not a key of the parser: /') )"
}
for plugin in server audit storage-host $notify_host \
              $(cat "$tmp/plugins"); do
    same "carechat.conf(5)" "$plugin" "$tmp/page"
    same "$guide" "$plugin" "$tmp/guide"
done
why=
for f in page guide; do
    for plugin in $(cut -d' ' -f1 "$tmp/$f" | sort -u); do
        case $plugin in section:*) continue ;; esac
        grep -qx "$plugin" "$tmp/plugins" || [ "$plugin" = server ] ||
            [ "$plugin" = audit ] || [ "$plugin" = storage-host ] ||
            [ "$plugin" = notify-host ] ||
            why="$why
$f documents keys of $plugin, which is not a plugin in plugins/"
    done
done
for sh in STORAGE AUTHENTICATION FAN-OUT NOTIFY; do
    grep -qx "section:$sh plugin" "$tmp/page" ||
        why="$why
carechat.conf(5) section $sh does not document the key plugin"
done
report "no keys of unknown plugins; plugin documented per section" "$why"

echo "1..$n"
exit $fail
