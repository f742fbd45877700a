/*
 * www.h - the demo page ([server] demo = yes): the files of demo_dir
 * (index.html, app.js, style.css; www/ in the source tree) served at /.
 *
 * Owns the files, read once at start and served from memory: a fixed
 * list of names, so no path from a request ever reaches the file system.
 * Answers carry a strict Content-Security-Policy (the page's own scripts
 * and styles only; connections to this server only).  Off by default; an
 * operator turns it on to try carechat, not to run a ward on it.
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
