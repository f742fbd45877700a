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

struct cc_conn;

/* Read the demo files from dir.  Returns 0, or -1 after logging which
 * file could not be read and why. */
int cc_www_load(const char *dir);

/* When the demo is loaded and c's request is a GET or HEAD of one of its
 * paths, answer it and return 1; otherwise 0 (the request is not ours). */
int cc_www_serve(struct cc_conn *c);

/* Free the files. */
void cc_www_free(void);

#endif
