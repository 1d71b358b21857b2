/*
 * report.c - results: cases and their repetitions, medians, and the four
 * outputs (aligned table, --json, --csv, --plot), plus the progress line.
 *
 * Every figure printed for a case is the median of its repetitions, each
 * metric taken on its own (the median p99 is the median of the runs' p99s).
 * The spread is (max - min) / 2 of the runs' records/s, as a percentage of
 * their median: "±3%" means every run was within about 3 % of the median.
 */
#include "bench.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Cases                                                                    */
/* ------------------------------------------------------------------------ */

struct bcase *results_case(struct results *r, const char *workload,
			   const char *engine, const char *label,
			   const char *point, enum case_kind kind,
			   const struct case_params *par)
{
	struct bcase *c;

	for (size_t i = 0; i < r->n; i++) {
		c = &r->v[i];
		if (!strcmp(c->workload, workload) &&
		    !strcmp(c->engine, engine) && !strcmp(c->label, label) &&
		    !strcmp(c->point, point))
			return c;
	}
	if (r->n == r->cap) {
		size_t ncap = r->cap ? r->cap * 2 : 16;
		struct bcase *nv = realloc(r->v, ncap * sizeof *nv);

		if (!nv)
			die("out of memory");
		r->v = nv;
		r->cap = ncap;
	}
	c = &r->v[r->n++];
	memset(c, 0, sizeof *c);
	snprintf(c->workload, sizeof c->workload, "%s", workload);
	snprintf(c->engine, sizeof c->engine, "%s", engine);
	snprintf(c->label, sizeof c->label, "%s", label);
	snprintf(c->point, sizeof c->point, "%s", point);
	c->kind = kind;
	if (par)
		c->par = *par;
	return c;
}

void case_add(struct bcase *c, const struct sample *s, const struct hist *lat)
{
	if (c->n < MAX_REPS)
		c->s[c->n++] = *s;
	if (lat && lat->n) {
		if (!c->lat)
			c->lat = xcalloc(1, sizeof *c->lat);
		hist_merge(c->lat, lat);
	}
}

void sample_latency(struct sample *s, const struct hist *h)
{
	static const double q[LAT_N - 1] = { 0.50, 0.90, 0.99, 0.999 };

	s->has_lat = h->n > 0;
	if (!s->has_lat)
		return;
	for (int i = 0; i < LAT_N - 1; i++)
		s->lat_us[i] = (double)hist_quantile(h, q[i]) / 1e3;
	s->lat_us[LAT_MAX] = (double)h->max / 1e3;
}

void results_free(struct results *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->v[i].lat);
	free(r->v);
	r->v = NULL;
	r->n = r->cap = 0;
}

/* ------------------------------------------------------------------------ */
/* Medians                                                                  */
/* ------------------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Which figure of a sample. */
enum metric {
	M_MSGS,
	M_MB,
	M_SECONDS,
	M_MS,
	M_LAT0, /* + LAT_* */
};

static double metric_of(const struct sample *s, int m)
{
	switch (m) {
	case M_MSGS:
		return s->seconds > 0 ? (double)s->records / s->seconds : 0;
	case M_MB:
		return s->seconds > 0 ? (double)s->bytes / 1e6 / s->seconds : 0;
	case M_SECONDS:
		return s->seconds;
	case M_MS:
		return s->ms;
	default:
		return s->lat_us[m - M_LAT0];
	}
}

struct stat3 {
	double med, min, max;
};

static struct stat3 median(const struct bcase *c, int m)
{
	double v[MAX_REPS];
	struct stat3 r = { 0, 0, 0 };
	unsigned n = c->n;

	if (!n)
		return r;
	for (unsigned i = 0; i < n; i++)
		v[i] = metric_of(&c->s[i], m);
	qsort(v, n, sizeof v[0], cmp_double);
	r.min = v[0];
	r.max = v[n - 1];
	r.med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	return r;
}

static bool case_has_lat(const struct bcase *c)
{
	return c->n && c->s[0].has_lat;
}

/* records/s of @c over that of the same case on mqlog, or < 0 if none. */
static double ratio_to_mqlog(const struct results *r, const struct bcase *c)
{
	if (strcmp(c->workload, "produce") && strcmp(c->workload, "consume"))
		return -1;
	for (size_t i = 0; i < r->n; i++) {
		const struct bcase *m = &r->v[i];

		if (!strcmp(m->engine, "mqlog") &&
		    !strcmp(m->workload, c->workload) &&
		    !strcmp(m->label, c->label) &&
		    !strcmp(m->point, c->point)) {
			double base = median(m, M_MSGS).med;

			return base > 0 ? median(c, M_MSGS).med / base : -1;
		}
	}
	return -1;
}

static double spread_pct(const struct bcase *c, int m)
{
	struct stat3 s = median(c, m);

	return s.med > 0 ? (s.max - s.min) / 2 / s.med * 100 : 0;
}

/* ------------------------------------------------------------------------ */
/* Table                                                                    */
/* ------------------------------------------------------------------------ */

static void print_header(const struct bench_opts *o)
{
	printf("mqlog-bench %s: ", mode_name(o->mode));
	if (o->mode == MODE_RECOVERY) {
		printf("%" PRIu64 " segments; %" PRIu64
		       " bytes of log before kill -9",
		       o->segments, o->bytes);
	} else {
		printf("size %" PRIu64 " B, %" PRIu64 " records, batch %" PRIu64
		       ", %" PRIu32 " partition%s, %u producer%s",
		       o->size, o->count, o->batch, o->partitions,
		       o->partitions == 1 ? "" : "s", o->producers,
		       o->producers == 1 ? "" : "s");
		if (o->mode != MODE_PRODUCE)
			printf(", %u consumer%s", o->consumers,
			       o->consumers == 1 ? "" : "s");
		if (o->processes)
			printf(" (processes)");
		printf(", sync %s", sync_name(o->sync));
	}
	if (o->reps > 1)
		printf("; median of %u runs", o->reps);
	printf("\n\n");
}

static void print_table(const struct bench_opts *o, const struct results *r)
{
	bool lat = false, ratio = o->mode == MODE_COMPARE, point = false;
	bool spread = o->reps > 1;
	int lw = 4, pw = 5;

	print_header(o);
	for (size_t i = 0; i < r->n; i++) {
		const struct bcase *c = &r->v[i];
		int l = (int)strlen(c->label), p = (int)strlen(c->point);

		lat |= case_has_lat(c);
		point |= c->point[0] != '\0';
		if (l > lw)
			lw = l;
		if (p > pw)
			pw = p;
	}

	if (o->mode == MODE_RECOVERY) {
		printf("%-*s %10s %10s %10s  %s\n", lw, "case", "ms", "min ms",
		       "max ms", "detail");
		for (size_t i = 0; i < r->n; i++) {
			const struct bcase *c = &r->v[i];
			struct stat3 s = median(c, M_MS);

			printf("%-*s %10.2f %10.2f %10.2f  %s\n", lw, c->label,
			       s.med, s.min, s.max, c->note);
		}
		return;
	}

	if (point)
		printf("%-*s ", pw, "point");
	printf("%-*s %-7s %13s %10s", lw, "case", "engine", "msgs/s", "MB/s");
	if (ratio)
		printf(" %9s", "vs mqlog");
	if (spread)
		printf(" %7s", "spread");
	if (lat)
		printf(" %9s %9s %9s %9s %9s", "p50 us", "p90 us", "p99 us",
		       "p999 us", "max us");
	printf("\n");
	for (size_t i = 0; i < r->n; i++) {
		const struct bcase *c = &r->v[i];

		if (point)
			printf("%-*s ", pw, c->point);
		printf("%-*s %-7s %13.0f %10.1f", lw, c->label, c->engine,
		       median(c, M_MSGS).med, median(c, M_MB).med);
		if (ratio) {
			double x = ratio_to_mqlog(r, c);

			if (x < 0)
				printf(" %9s", "-");
			else
				printf(" %8.2fx", x);
		}
		if (spread)
			printf("  ±%4.1f%%", spread_pct(c, M_MSGS));
		if (lat && case_has_lat(c)) {
			for (int k = 0; k < LAT_N; k++)
				printf(" %9.1f", median(c, M_LAT0 + k).med);
		} else if (lat) {
			printf(" %9s %9s %9s %9s %9s", "-", "-", "-", "-", "-");
		}
		printf("\n");
	}
	if (ratio)
		printf("\nvs mqlog: the engine's records/s divided by mqlog's "
		       "in the same case.\n");
	if (lat)
		printf("%slatency: %s.\n", ratio ? "" : "\n",
		       o->mode == MODE_E2E ?
			       "from the send time stamped in the record to "
			       "its delivery by the consumer" :
			       "of one append call (one batch)");
}

/* ------------------------------------------------------------------------ */
/* JSON and CSV                                                             */
/* ------------------------------------------------------------------------ */

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static void json_num(const char *key, double v, bool valid)
{
	printf(",\"%s\":", key);
	if (valid)
		printf(strcmp(key, "seconds") ? "%.3f" : "%.6f", v);
	else
		printf("null");
}

static void case_name(const struct bcase *c, char *out, size_t len)
{
	snprintf(out, len, "%s %s%s%s", c->engine, c->label,
		 c->point[0] ? " " : "", c->point);
}

static void print_json(const struct bench_opts *o, const struct results *r)
{
	static const char *lat_keys[LAT_N] = { "p50_us", "p90_us", "p99_us",
					       "p999_us", "max_us" };

	printf("{\"bench\":");
	json_str(mode_name(o->mode));
	printf(",\"reps\":%u,\"cases\":[", o->reps);
	for (size_t i = 0; i < r->n; i++) {
		const struct bcase *c = &r->v[i];
		const struct case_params *p = &c->par;
		bool rate = c->kind == KIND_RATE;
		bool lat = case_has_lat(c);
		char name[160];
		double x;

		case_name(c, name, sizeof name);
		printf("%s{\"name\":", i ? "," : "");
		json_str(name);
		printf(",\"workload\":");
		json_str(c->workload);
		printf(",\"engine\":");
		json_str(c->engine);
		printf(",\"label\":");
		json_str(c->label);
		printf(",\"point\":");
		if (c->point[0])
			json_str(c->point);
		else
			printf("null");
		printf(",\"size\":%" PRIu64 ",\"count\":%" PRIu64
		       ",\"partitions\":%" PRIu32 ",\"producers\":%u"
		       ",\"consumers\":%u,\"threads\":%u,\"batch\":%" PRIu64
		       ",\"rate\":%" PRIu64 ",\"processes\":%s,\"sync\":",
		       p->size, p->count, p->partitions, p->producers,
		       p->consumers,
		       !strcmp(c->workload, "produce") ? p->producers :
							 p->consumers,
		       p->batch, p->rate, p->processes ? "true" : "false");
		json_str(sync_name(p->sync));
		printf(",\"reps\":%u", c->n);
		json_num("msgs_per_s", median(c, M_MSGS).med, rate);
		json_num("msgs_per_s_min", median(c, M_MSGS).min, rate);
		json_num("msgs_per_s_max", median(c, M_MSGS).max, rate);
		json_num("mb_per_s", median(c, M_MB).med, rate);
		json_num("seconds", median(c, M_SECONDS).med, rate);
		x = rate && o->mode == MODE_COMPARE ? ratio_to_mqlog(r, c) : -1;
		json_num("ratio_to_mqlog", x, x >= 0);
		for (int k = 0; k < LAT_N; k++)
			json_num(lat_keys[k], median(c, M_LAT0 + k).med, lat);
		if (!rate) {
			json_num("ms", median(c, M_MS).med, true);
			json_num("ms_min", median(c, M_MS).min, true);
			json_num("ms_max", median(c, M_MS).max, true);
			printf(",\"note\":");
			json_str(c->note);
		}
		printf("}");
	}
	printf("]}\n");
}

static void csv_str(const char *s)
{
	if (!strpbrk(s, ",\"\n")) {
		fputs(s, stdout);
		return;
	}
	putchar('"');
	for (; *s; s++) {
		if (*s == '"')
			putchar('"');
		putchar(*s);
	}
	putchar('"');
}

static void csv_num(double v, bool valid)
{
	putchar(',');
	if (valid)
		printf("%.3f", v);
}

static void print_csv(const struct bench_opts *o, const struct results *r)
{
	printf("name,workload,engine,point,size,count,partitions,producers,"
	       "consumers,batch,rate,processes,sync,reps,msgs_per_s,"
	       "msgs_per_s_min,msgs_per_s_max,mb_per_s,seconds,"
	       "ratio_to_mqlog,p50_us,p90_us,p99_us,p999_us,max_us,ms,"
	       "ms_min,ms_max,note\n");
	for (size_t i = 0; i < r->n; i++) {
		const struct bcase *c = &r->v[i];
		const struct case_params *p = &c->par;
		bool rate = c->kind == KIND_RATE, lat = case_has_lat(c);
		char name[160];
		double x;

		case_name(c, name, sizeof name);
		csv_str(name);
		putchar(',');
		csv_str(c->workload);
		putchar(',');
		csv_str(c->engine);
		putchar(',');
		csv_str(c->point);
		printf(",%" PRIu64 ",%" PRIu64 ",%" PRIu32 ",%u,%u,%" PRIu64
		       ",%" PRIu64 ",%d,%s,%u",
		       p->size, p->count, p->partitions, p->producers,
		       p->consumers, p->batch, p->rate, p->processes ? 1 : 0,
		       sync_name(p->sync), c->n);
		csv_num(median(c, M_MSGS).med, rate);
		csv_num(median(c, M_MSGS).min, rate);
		csv_num(median(c, M_MSGS).max, rate);
		csv_num(median(c, M_MB).med, rate);
		if (rate)
			printf(",%.6f", median(c, M_SECONDS).med);
		else
			putchar(',');
		x = rate && o->mode == MODE_COMPARE ? ratio_to_mqlog(r, c) : -1;
		csv_num(x, x >= 0);
		for (int k = 0; k < LAT_N; k++)
			csv_num(median(c, M_LAT0 + k).med, lat);
		csv_num(median(c, M_MS).med, !rate);
		csv_num(median(c, M_MS).min, !rate);
		csv_num(median(c, M_MS).max, !rate);
		putchar(',');
		csv_str(c->note);
		putchar('\n');
	}
}

/* ------------------------------------------------------------------------ */
/* Plot                                                                     */
/* ------------------------------------------------------------------------ */

static bool have_gnuplot(void)
{
	const char *path = getenv("PATH");
	char buf[PATH_MAX];

	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		const char *end = strchr(path, ':');
		size_t len = end ? (size_t)(end - path) : strlen(path);

		if (len && len + 9 < sizeof buf) {
			memcpy(buf, path, len);
			memcpy(buf + len, "/gnuplot", 9);
			if (access(buf, X_OK) == 0)
				return true;
		}
		path += len;
		if (*path == ':')
			path++;
	}
	return false;
}

void plot_check(const struct bench_opts *o)
{
	if (o->plot && !have_gnuplot())
		die("--plot needs gnuplot, which is not installed "
		    "(on Debian: apt-get install gnuplot-nox)");
}

/* gnuplot string literal: single quotes, doubled inside. */
static void gp_str(FILE *f, const char *s)
{
	fputc('\'', f);
	for (; *s; s++) {
		if (*s == '\'')
			fputc('\'', f);
		fputc(*s, f);
	}
	fputc('\'', f);
}

/* Data-file string: double quotes, none inside. */
static void dat_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++)
		fputc(*s == '"' ? '\'' : *s, f);
	fputc('"', f);
}

static FILE *open_in(const char *dir, const char *name, char out[PATH_MAX])
{
	FILE *f;

	snprintf(out, PATH_MAX, "%s/%s", dir, name);
	f = fopen(out, "w");
	if (!f)
		die("%s: %s", out, strerror(errno));
	return f;
}

/* One colour per engine, so that a sweep's bars group visibly. */
static int engine_color(const char *engine)
{
	if (!strcmp(engine, "file"))
		return 0x999999;
	if (!strcmp(engine, "lmdb"))
		return 0x228833;
	if (!strcmp(engine, "sqlite"))
		return 0xee7733;
	return 0x4477aa;
}

/*
 * Throughput bars (median records/s of each case) and, when some case has
 * latencies, their distribution: latency against percentile on the
 * 1 / (1 - q) axis of HdrHistogram's plots, one line per case (every
 * repetition's values merged).
 */
static void plot(const struct bench_opts *o, const struct results *r)
{
	static const double qs[] = { 0.0,    0.25,    0.5,     0.75,  0.9,
				     0.95,   0.99,    0.995,   0.999, 0.9995,
				     0.9999, 0.99999, 0.999999 };
	char tmp[PATH_MAX], path[PATH_MAX], script[PATH_MAX], abs[PATH_MAX];
	const char *base = getenv("TMPDIR");
	FILE *f, *g;
	size_t nlat = 0;
	pid_t pid;
	int st;

	if (!base || !*base)
		base = "/tmp";
	snprintf(tmp, sizeof tmp, "%s/mqlog-bench-plot-XXXXXX", base);
	if (!mkdtemp(tmp))
		die("mkdtemp %s: %s", tmp, strerror(errno));
	if (o->plot[0] == '/' || !getcwd(abs, sizeof abs))
		snprintf(abs, sizeof abs, "%s", o->plot);
	else {
		size_t l = strlen(abs);

		snprintf(abs + l, sizeof abs - l, "/%s", o->plot);
	}

	f = open_in(tmp, "bars.dat", path);
	for (size_t i = 0; i < r->n; i++) {
		const struct bcase *c = &r->v[i];
		char name[160];

		case_name(c, name, sizeof name);
		fprintf(f, "%zu ", i);
		dat_str(f, name);
		fprintf(f, " %.6f %d\n", median(c, M_MSGS).med / 1e6,
			engine_color(c->engine));
		if (c->lat && c->lat->n) {
			char n2[32], p2[PATH_MAX];
			FILE *l;

			snprintf(n2, sizeof n2, "lat%zu.dat", i);
			l = open_in(tmp, n2, p2);
			for (size_t k = 0; k < sizeof qs / sizeof qs[0]; k++) {
				/* Only percentiles the samples resolve. */
				if (k && (1 - qs[k]) * (double)c->lat->n < 1)
					break;
				fprintf(l, "%.6g %.3f\n", 1 / (1 - qs[k]),
					(double)hist_quantile(
						c->lat, qs[k] ? qs[k] : 1e-9) /
						1e3);
			}
			fprintf(l, "%.6g %.3f\n", (double)c->lat->n,
				(double)c->lat->max / 1e3);
			fclose(l);
			nlat++;
		}
	}
	fclose(f);

	g = open_in(tmp, "plot.gp", script);
	fprintf(g,
		"if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
		"  set terminal pngcairo size 1280,%d noenhanced font ',10'\n"
		"} else {\n"
		"  set terminal png size 1280,%d noenhanced\n"
		"}\n",
		nlat ? 1100 : 600, nlat ? 1100 : 600);
	fprintf(g, "set output ");
	gp_str(g, abs);
	fprintf(g, "\ncd ");
	gp_str(g, tmp);
	fprintf(g, "\n");
	if (nlat)
		fprintf(g, "set multiplot layout 2,1\n");
	fprintf(g,
		"set title 'mqlog-bench %s: throughput (median of %u run%s)'\n",
		mode_name(o->mode), o->reps, o->reps == 1 ? "" : "s");
	fprintf(g,
		"set ylabel 'million records/s'\n"
		"set style fill solid 0.7 border -1\n"
		"set boxwidth 0.7\n"
		"set yrange [0:*]\n"
		"set offsets 0, 0, graph 0.12, 0\n"
		"set xrange [-0.6:%zu.6]\n"
		"set xtics rotate by -35 nomirror\n"
		"set grid ytics\n"
		"plot 'bars.dat' using 1:3:4:xtic(2) with boxes lc rgb variable notitle, \\\n"
		"     '' using 1:3:(sprintf('%%.2f', $3)) with labels offset 0,0.8 notitle\n",
		r->n ? r->n - 1 : 0);
	if (nlat) {
		bool first = true;

		fprintf(g,
			"unset xrange\nunset yrange\nset offsets 0, 0, 0, 0\n"
			"set xtics norotate\n"
			"set title 'latency by percentile (%s)'\n"
			"set logscale xy\n"
			"set xlabel 'percentile'\n"
			"set ylabel 'microseconds'\n"
			/* tic labels are formats too: %%%% is one % */
			"set xtics ('0%%%%' 1, '50%%%%' 2, '90%%%%' 10, "
			"'99%%%%' 100, '99.9%%%%' 1000, '99.99%%%%' 10000, "
			"'99.999%%%%' 100000, '99.9999%%%%' 1000000)\n"
			"set key left top\n"
			"plot ",
			o->mode == MODE_E2E ? "producer to consumer" :
					      "one append call");
		for (size_t i = 0; i < r->n; i++) {
			const struct bcase *c = &r->v[i];
			char name[160], n2[32];

			if (!c->lat || !c->lat->n)
				continue;
			case_name(c, name, sizeof name);
			snprintf(n2, sizeof n2, "lat%zu.dat", i);
			fprintf(g, "%s", first ? "" : ", \\\n     ");
			gp_str(g, n2);
			fprintf(g, " using 1:2 with linespoints title ");
			gp_str(g, name);
			first = false;
		}
		fprintf(g, "\nunset multiplot\n");
	}
	fclose(g);

	fflush(NULL);
	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		execlp("gnuplot", "gnuplot", script, (char *)NULL);
		_exit(127);
	}
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	rmtree(tmp);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		die("gnuplot failed to draw %s", o->plot);
	fprintf(stderr, "mqlog-bench: plot written to %s\n", o->plot);
}

void report(const struct bench_opts *o, const struct results *r)
{
	if (o->json)
		print_json(o, r);
	else if (o->csv)
		print_csv(o, r);
	else
		print_table(o, r);
	if (fflush(stdout) != 0)
		die("stdout: %s", strerror(errno));
	if (o->plot)
		plot(o, r);
}

/* ------------------------------------------------------------------------ */
/* Progress line                                                            */
/* ------------------------------------------------------------------------ */

static bool progress_shown;

void progress_show(const struct bench_opts *o, const char *fmt, ...)
{
	va_list ap;

	if (!o->progress)
		return;
	fputs("\r\033[K", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fflush(stderr);
	progress_shown = true;
}

void progress_clear(const struct bench_opts *o)
{
	if (!o->progress || !progress_shown)
		return;
	fputs("\r\033[K", stderr);
	fflush(stderr);
	progress_shown = false;
}
