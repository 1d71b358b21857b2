/*
 * gen_corpus.c - write the seed corpora of the fuzz targets: valid batches
 * and segments as the engine writes them (null and empty keys and values,
 * headers, many records, large values, several batches, a zero tail, a
 * torn tail), each with the mode bytes the targets understand.
 *
 *     gen_corpus DIR      writes DIR/batch, DIR/scan, DIR/tool
 *
 * tests/fuzz/corpus/ holds its output (scripts/fuzz regenerates it with
 * --seeds).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"

static const char *out_dir;

static void put(const char *target, const char *name, uint8_t mode,
		const uint8_t *p, size_t n)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", out_dir, target);
	if (mkdir(path, 0755) != 0 && errno != EEXIST) {
		perror(path);
		exit(1);
	}
	snprintf(path, sizeof path, "%s/%s/%s-m%u", out_dir, target, name,
		 mode);
	f = fopen(path, "wb");
	if (!f || fwrite(&mode, 1, 1, f) != 1 ||
	    (n && fwrite(p, 1, n, f) != n) || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

/* Encode @n messages as a batch at @base into @out (>= its size). */
static size_t batch(const mqlog_msg *m, size_t n, uint64_t base, uint8_t *out)
{
	size_t size;
	if (batch_encoded_size(m, n, 1u << 20, 1700000000000, &size) != 0) {
		fprintf(stderr, "gen_corpus: %s\n", mqlog_errmsg(NULL));
		exit(1);
	}
	batch_encode(out, size, m, n, 1700000000000);
	batch_seal(out, base);
	return size;
}

int main(int argc, char **argv)
{
	static uint8_t seg[65536], b[8192];
	static char big[3000];
	mqlog_msg m[8];
	mqlog_header h[3] = {
		{ { "trace", 5 }, { "abc123", 6 } },
		{ { "", 0 }, { NULL, 0 } },
		{ { "k", 1 }, { "", 0 } },
	};
	size_t n, pos = 0;
	uint64_t off = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: gen_corpus DIR\n");
		return 2;
	}
	out_dir = argv[1];
	if (mkdir(out_dir, 0755) != 0 && errno != EEXIST) {
		perror(out_dir);
		return 1;
	}
	memset(big, 'x', sizeof big);
	memset(m, 0, sizeof m);

	/* One record, null key. */
	m[0].value = (mqlog_bytes){ "hello", 5 };
	m[0].timestamp = MQLOG_TIMESTAMP_NOW;
	n = batch(m, 1, 0, b);
	for (uint8_t mode = 0; mode < 8; mode += 1)
		put("batch", "one", mode, b, n);
	memcpy(seg + pos, b, n);
	pos += n;
	off += 1;

	/* Keys, empty values, headers, timestamps going backwards. */
	for (int i = 0; i < 5; i++) {
		m[i].key = (mqlog_bytes){ i % 2 ? "key" : "", i % 2 ? 3u : 0u };
		m[i].value = i == 2 ? (mqlog_bytes){ NULL, 0 } :
				      (mqlog_bytes){ "v", 1 };
		m[i].headers = i == 3 ? h : NULL;
		m[i].header_count = i == 3 ? 3 : 0;
		m[i].timestamp = 1000 - i * 7;
	}
	n = batch(m, 5, off, b);
	put("batch", "five", 0, b, n);
	put("batch", "five", 1, b, n);
	put("batch", "five", 5, b, n);
	memcpy(seg + pos, b, n);
	pos += n;
	off += 5;

	/* A large value. */
	memset(m, 0, sizeof m);
	m[0].value = (mqlog_bytes){ big, sizeof big };
	m[0].timestamp = 5;
	n = batch(m, 1, off, b);
	put("batch", "big", 0, b, n);
	put("batch", "big", 1, b, n);
	memcpy(seg + pos, b, n);
	pos += n;
	off += 1;

	/* Segments: several batches; with a zero tail; torn. */
	put("scan", "three", 0, seg, pos);
	put("scan", "three", 2, seg, pos);
	put("tool", "three", 0, seg, pos);
	memset(seg + pos, 0, 512);
	put("scan", "zerotail", 2, seg, pos + 512);
	put("tool", "zerotail", 0, seg, pos + 512);
	put("scan", "torn", 3, seg, pos - 100);
	put("tool", "torn", 1, seg, pos - 100);
	put("scan", "empty", 0, seg, 0);
	printf("gen_corpus: seeds written under %s\n", out_dir);
	return 0;
}
