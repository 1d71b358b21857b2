/*
 * fixture.h - helpers shared by the Check suites: a fresh temporary
 * directory per test, recursive removal, small file utilities.
 */
#ifndef MQLOG_TEST_FIXTURE_H
#define MQLOG_TEST_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

/* fx_tmpdir - create a fresh directory under $TMPDIR (or /tmp); returns a
 * malloc'd path.  fx_rmtree removes a tree (ignoring errors). */
char *fx_tmpdir(void);
void fx_rmtree(const char *path);

/* fx_path - snprintf into a static rotating buffer (8 slots). */
const char *fx_path(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* File helpers; each returns 0 or -errno. */
int fx_file_size(const char *path, uint64_t *size);
int fx_truncate(const char *path, uint64_t size);
int fx_flip_bit(const char *path, uint64_t byte, unsigned bit);
int fx_append_bytes(const char *path, const void *buf, size_t len);
int fx_copy_file(const char *from, const char *to);

/* The common per-test temp directory, set up by fx_setup / fx_teardown
 * (for tcase_add_checked_fixture). */
extern char *fx_dir;
void fx_setup(void);
void fx_teardown(void);

#endif
