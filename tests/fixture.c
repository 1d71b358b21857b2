#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "fixture.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *fx_dir;

char *fx_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	char tmpl[4096];
	if (!base || !*base)
		base = "/tmp";
	snprintf(tmpl, sizeof tmpl, "%s/mqlog-test-XXXXXX", base);
	if (!mkdtemp(tmpl))
		return NULL;
	return strdup(tmpl);
}

static int rm_cb(const char *p, const struct stat *sb, int flag,
		 struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(p);
	return 0;
}

void fx_rmtree(const char *path)
{
	if (path)
		nftw(path, rm_cb, 32, FTW_DEPTH | FTW_PHYS);
}

const char *fx_path(const char *fmt, ...)
{
	static char bufs[8][4096];
	static unsigned slot;
	char *b = bufs[slot++ % 8];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(b, 4096, fmt, ap);
	va_end(ap);
	return b;
}

int fx_file_size(const char *path, uint64_t *size)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return -errno;
	*size = (uint64_t)st.st_size;
	return 0;
}

int fx_truncate(const char *path, uint64_t size)
{
	return truncate(path, (off_t)size) == 0 ? 0 : -errno;
}

int fx_flip_bit(const char *path, uint64_t byte, unsigned bit)
{
	int fd = open(path, O_RDWR);
	unsigned char c;
	int rc = 0;
	if (fd < 0)
		return -errno;
	if (pread(fd, &c, 1, (off_t)byte) != 1) {
		rc = -EIO;
		goto out;
	}
	c ^= (unsigned char)(1u << (bit & 7));
	if (pwrite(fd, &c, 1, (off_t)byte) != 1)
		rc = -EIO;
out:
	close(fd);
	return rc;
}

int fx_append_bytes(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_APPEND);
	int rc = 0;
	if (fd < 0)
		return -errno;
	if (write(fd, buf, len) != (ssize_t)len)
		rc = -EIO;
	close(fd);
	return rc;
}

int fx_copy_file(const char *from, const char *to)
{
	char buf[65536];
	ssize_t n;
	int rc = 0;
	int in = open(from, O_RDONLY);
	int out;
	if (in < 0)
		return -errno;
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (out < 0) {
		rc = -errno;
		close(in);
		return rc;
	}
	while ((n = read(in, buf, sizeof buf)) > 0)
		if (write(out, buf, (size_t)n) != n) {
			rc = -EIO;
			break;
		}
	close(in);
	close(out);
	return rc;
}

void fx_setup(void)
{
	fx_dir = fx_tmpdir();
}

void fx_teardown(void)
{
	fx_rmtree(fx_dir);
	free(fx_dir);
	fx_dir = NULL;
}
