/*
 * fuzz_tool.c - libFuzzer target for `mqlog-tool dump FILE`, `mqlog-tool
 * dump DIR TOPIC PARTITION` and `mqlog-tool verify DIR` on an arbitrary
 * segment file.  The tool's source is compiled into this target with its
 * main() renamed (tests/fuzz/meson.build).
 *
 * A data directory with one topic of one partition is made once; each
 * input becomes that partition's only segment file.  Mode bit 0 of the
 * first byte fixes the batch chain's checksums (as in fuzz_scan.c).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);
int mqlog_tool_main(int argc, char **argv);

static char dir[256], seg[512];

/* The tool's main() gives stdout a big buffer at every start, which stdio
 * allows only before the stream is used: here it is a no-op (meson.build
 * renames the tool's setvbuf to this). */
int mqlog_fuzz_setvbuf(FILE *f, char *buf, int mode, size_t size);
int mqlog_fuzz_setvbuf(FILE *f, char *buf, int mode, size_t size)
{
	(void)f;
	(void)buf;
	(void)mode;
	(void)size;
	return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *tmp = getenv("TMPDIR");
	mqlog *db;
	(void)argc;
	(void)argv;
	snprintf(dir, sizeof dir, "%s/mqlog-fuzz-tool-%d",
		 tmp && *tmp ? tmp : "/tmp", (int)getpid());
	if (mqlog_open(dir, NULL, &db) != 0 ||
	    mqlog_topic_create(db, "t", NULL) != 0) {
		fprintf(stderr, "fuzz_tool: %s\n", mqlog_errmsg(NULL));
		abort();
	}
	mqlog_close(db);
	snprintf(seg, sizeof seg, "%s/topics/t/0/00000000000000000000.seg",
		 dir);
	/* The tool's output is not what is being tested. */
	if (!freopen("/dev/null", "w", stdout))
		abort();
	return 0;
}

static void fix_chain(uint8_t *buf, size_t size)
{
	uint64_t pos = 0, expect = 0;
	while (pos + BATCH_HEADER_SIZE <= size) {
		uint32_t len = mq_ld32(buf + pos + 4);
		uint32_t count = mq_ld32(buf + pos + 36);
		if (len < BATCH_HEADER_SIZE || len > size - pos)
			break;
		mq_st32(buf + pos, BATCH_MAGIC);
		mq_st64(buf + pos + 24,
			XXH3_64bits(buf + pos + BATCH_BODY_CSUM_START,
				    len - BATCH_BODY_CSUM_START));
		batch_seal(buf + pos, expect);
		expect += count;
		pos += len;
	}
}

static void run(int argc, const char *const *args)
{
	char *argv[8];
	for (int i = 0; i < argc; i++)
		argv[i] = (char *)(uintptr_t)args[i];
	argv[argc] = NULL;
	int rc = mqlog_tool_main(argc, argv);
	/* 0 clean, 1 runtime error, 3 corruption: never a usage error. */
	if (rc != 0 && rc != 1 && rc != 3)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *buf;
	int fd;

	if (size < 1)
		return 0;
	buf = malloc(size);
	if (!buf)
		return 0;
	memcpy(buf, data + 1, size - 1);
	if (data[0] & 1)
		fix_chain(buf, size - 1);
	fd = open(seg, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, buf, size - 1) != (ssize_t)(size - 1))
		abort();
	close(fd);
	free(buf);
	run(3, (const char *const[]){ "mqlog-tool", "dump", seg });
	run(3, (const char *const[]){ "mqlog-tool", "verify", dir });
	run(5, (const char *const[]){ "mqlog-tool", "dump", dir, "t", "0" });
	return 0;
}
