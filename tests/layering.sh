#!/bin/sh
# The layering of core/, from its #include lines (TAP).
#
# A module is a name with core/NAME.c and/or core/NAME.h; A depends on B
# when core/A.c or core/A.h includes "B.h".  Two checks:
#  1. no include cycle of more than four modules (the strongly connected
#     components of that graph: a small cycle of two tightly bound
#     modules is allowed, a knot of the whole core is not);
#  2. the message path reads downward: a module of a lower layer below
#     never includes one of a higher layer (modules not listed are free).
#     A message goes transport (rest, session) -> pipeline (send) ->
#     storage and fan-out (store, fanout) -> delivery (hub, order) ->
#     frames on the loops.
set -u
srcdir=${srcdir:-$(dirname "$0")/..}
core=$srcdir/core

# layer: modules (higher numbers may include lower ones, not the reverse)
LAYERS='
6 main daemon
5 admin reload
4 rest session resume ready www
3 send
2 hub order conn listen router marks ticket
1 store fanout auth audit retention server host chatcache notifier
0 frame loop metrics msg ws http log loglimit uuid timefmt config utf8 tally strhash tls sdnotify xalloc textsafe
'

deps=$(for f in "$core"/*.c "$core"/*.h; do
    m=$(basename "$f"); m=${m%.?}
    sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([a-z0-9_]*\)\.h".*/\1/p' "$f" |
    while read -r d; do
        [ "$d" != "$m" ] && [ -f "$core/$d.h" ] && echo "$m $d"
    done
done | sort -u)

echo "1..2"

# 1. Strongly connected components (Tarjan, in awk).
cycles=$(echo "$deps" | awk '
{ n[$1] = 1; n[$2] = 1; adj[$1] = adj[$1] " " $2 }
function visit(v,   ws, k, w) {
    idx[v] = low[v] = ++cnt; stack[++sp] = v; on[v] = 1
    k = split(adj[v], ws, " ")
    for (i[v] = 1; i[v] <= k; i[v]++) {
        w = ws[i[v]]
        if (!(w in idx)) { visit(w); if (low[w] < low[v]) low[v] = low[w] }
        else if (on[w] && idx[w] < low[v]) low[v] = idx[w]
    }
    if (low[v] == idx[v]) {
        comp = ""; size = 0
        do { w = stack[sp--]; on[w] = 0; comp = comp " " w; size++ }
        while (w != v)
        if (size > 4) print size ":" comp
    }
}
END { for (v in n) if (!(v in idx)) visit(v) }')
if [ -z "$cycles" ]; then
    echo "ok 1 - no include cycle of more than four core modules"
else
    echo "not ok 1 - include cycles of more than four core modules"
    echo "$cycles" | sed 's/^/# /'
fi

# 2. Layers.
bad=$(echo "$deps" | awk -v layers="$LAYERS" '
BEGIN {
    n = split(layers, lines, "\n")
    for (j = 1; j <= n; j++) {
        k = split(lines[j], f, " ")
        for (x = 2; x <= k; x++) layer[f[x]] = f[1]
    }
}
($1 in layer) && ($2 in layer) && layer[$2] > layer[$1] {
    print $1 " (layer " layer[$1] ") includes " $2 " (layer " layer[$2] ")"
}')
if [ -z "$bad" ]; then
    echo "ok 2 - the message path reads downward (no include up a layer)"
else
    echo "not ok 2 - includes up a layer"
    echo "$bad" | sed 's/^/# /'
fi
