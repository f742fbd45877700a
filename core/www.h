/*
 * www.h - the page ([server] demo = yes): the files of demo_dir (www/ in
 * the source tree: index.html, style.css and the modules app.js, api.js,
 * chatlist.js, connection.js, outbox.js, view.js) served at /.
 *
 * Owns the files, read once at start and served from memory: a fixed
 * list of names (www.c), so no path from a request ever reaches the file
 * system.  Answers carry a strict Content-Security-Policy (the page's own
 * scripts and styles only; connections to this server only).  Off by
 * default; doc/operations.md, "The page", says how a clinic hands it out.
 * Loop 0 only.
 */
#ifndef CC_WWW_H
#define CC_WWW_H

/* Read the demo files from dir.  Returns 0, or -1 after logging which
 * file could not be read and why. */
int cc_www_load(const char *dir);

/* Register the loaded files' paths with the router (GET, HEAD on the
 * public port); nothing when none were loaded. */
void cc_www_routes(void);

/* Free the files. */
void cc_www_free(void);

#endif
