/* The HTML report of a migration (migrate_report.h). */
#include "tools/migrate_report.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hv/log.h"
#include "hv/printable.h"
#include "tools/migrate_bar.h"
#include "tools/migrate_event.h"

#define PAGE 4096.0
#define MIB (1024.0 * 1024.0)

/* One pre-copy round, as its closing event tells it (per-round values, not running totals). */
struct report_round {
	double elapsed_ms, duration_ms;
	double zero, raw, compressed; /* pages of each kind sent in this round */
	double bytes;
	double rate_mibs, dirty_rate_mibs, remaining_pages, expected_downtime_ms;
};

struct migrate_report {
	struct report_round *rounds;
	size_t n, cap;
	/* Running totals at the last round's end, to take the next round's share from. */
	double zero, raw, compressed, wire;
	struct json_object *final;
};

struct migrate_report *migrate_report_new(void)
{
	return calloc(1, sizeof(struct migrate_report));
}

void migrate_report_free(struct migrate_report *r)
{
	if (!r)
		return;
	if (r->final)
		json_object_put(r->final);
	free(r->rounds);
	free(r);
}

/* Pages sent compressed so far, by either compressor. */
static double compressed_pages(struct json_object *ev)
{
	return event_num(ev, "zlib_pages") + event_num(ev, "zstd_pages");
}

void migrate_report_add(struct migrate_report *r, struct json_object *ev)
{
	const char *kind = event_str(ev, "event");

	if (r->final)
		return;
	if (!strcmp(kind, "migration-done") || !strcmp(kind, "migration-failed")) {
		r->final = json_object_get(ev);
		return;
	}
	if (strcmp(kind, "migration") || !event_flag(ev, "round_end"))
		return;
	if (r->n == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 32;
		struct report_round *p = realloc(r->rounds, cap * sizeof(*p));
		if (!p)
			return;
		r->rounds = p;
		r->cap = cap;
	}
	struct report_round *x = &r->rounds[r->n++];
	*x = (struct report_round){
		.elapsed_ms = event_num(ev, "elapsed_ms"),
		.duration_ms = event_num(ev, "round_elapsed_ms"),
		.zero = event_num(ev, "zero_pages") - r->zero,
		.raw = event_num(ev, "raw_pages") - r->raw,
		.compressed = compressed_pages(ev) - r->compressed,
		.bytes = event_num(ev, "wire_bytes") - r->wire,
		.rate_mibs = event_num(ev, "rate_mibs"),
		.dirty_rate_mibs = event_num(ev, "dirty_rate_mibs"),
		.remaining_pages = event_num(ev, "remaining_pages"),
		.expected_downtime_ms = event_num(ev, "expected_downtime_ms"),
	};
	r->zero = event_num(ev, "zero_pages");
	r->raw = event_num(ev, "raw_pages");
	r->compressed = compressed_pages(ev);
	r->wire = event_num(ev, "wire_bytes");
}

bool migrate_report_complete(const struct migrate_report *r)
{
	return r->final != NULL;
}

/* ---- the paragraph ---- */

/* Appends to buf at *off (always NUL-terminated, truncated at len). */
static void put(char *buf, size_t len, size_t *off, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void put(char *buf, size_t len, size_t *off, const char *fmt, ...)
{
	va_list ap;

	if (*off >= len)
		return;
	va_start(ap, fmt);
	int n = vsnprintf(buf + *off, len - *off, fmt, ap);
	va_end(ap);
	if (n > 0)
		*off = *off + (size_t)n < len ? *off + (size_t)n : len - 1;
}

size_t migrate_report_why(const struct migrate_report *r, char *buf, size_t len)
{
	struct json_object *f = r->final, *p = event_member(f, "params");
	double limit = event_num(p, "max_downtime_ms"), down = event_num(f, "downtime_ms");
	size_t off = 0;
	char err[300];

	if (!len)
		return 0;
	buf[0] = '\0';
	if (!f) {
		put(buf, len, &off, "The log ends before the migration did: no final event.");
		return off;
	}
	if (strcmp(event_str(f, "event"), "migration-done")) {
		printable(err, sizeof(err), event_str(f, "error"));
		if (event_flag(f, "outcome_unknown"))
			put(buf, len, &off, "The link failed once the destination could start the guest: %s", err);
		else
			put(buf, len, &off, "The migration failed: %s. The guest kept running on the source; "
				 "nothing was left on the destination.", err);
		return off;
	}
	if (r->n == 0) {
		put(buf, len, &off, "The guest was paused for the whole copy (%s), so there were no "
			 "pre-copy rounds: its memory was sent once, %.0f pages that held data, then its state. "
			 "The guest was paused for %.1f ms.",
			 event_flag(p, "offline") ? "an offline migration" : "a snapshot without --live",
			 event_num(f, "pages_sent"), down);
		return off;
	}
	const struct report_round *first = &r->rounds[0], *last = &r->rounds[r->n - 1];
	double first_mib = (first->zero + first->raw + first->compressed) * PAGE / MIB;
	put(buf, len, &off, "Round 0 copied the %.1f MiB the guest had touched, out of %.0f MiB of RAM "
		 "(memory it never touched is not sent), while the guest kept running. ",
		 first_mib, event_num(f, "ram_pages") * PAGE / MIB);
	if (r->n > 1)
		put(buf, len, &off, "Each later round sent what the guest had rewritten during the round "
			 "before. ");
	put(buf, len, &off, "After round %zu, %.1f MiB were still dirty: the guest was writing %.1f MiB/s "
		 "and the link carried %.1f MiB/s, so sending the rest with the guest paused would take "
		 "about %.1f ms. ",
		 r->n - 1, last->remaining_pages * PAGE / MIB, last->dirty_rate_mibs, last->rate_mibs,
		 last->expected_downtime_ms);
	if (last->expected_downtime_ms <= limit)
		put(buf, len, &off, "That fits the %.0f ms limit, so hv switched over: ", limit);
	else if ((double)r->n >= event_num(p, "max_rounds"))
		put(buf, len, &off, "That is over the %.0f ms limit, but the %.0f rounds allowed "
			 "(--max-rounds) were used up, and --on-timeout force switched over anyway: ",
			 limit, event_num(p, "max_rounds"));
	else
		put(buf, len, &off, "That is over the %.0f ms limit, but the dirty set had stopped "
			 "shrinking, so more rounds would not have helped; hv switched over: ", limit);
	put(buf, len, &off, "it paused the guest, sent the last %.0f pages and the vCPU and device "
		 "state, and the guest was paused for %.1f ms in all (estimated %.1f ms).",
		 event_num(event_member(f, "switchover"), "last_pages"), down, last->expected_downtime_ms);
	return off;
}

/* ---- HTML ---- */

/* Text from the events (names, paths, errors): printable, then escaped for HTML. */
static void html(FILE *o, const char *s)
{
	char safe[1024];

	printable(safe, sizeof(safe), s);
	for (const char *c = safe; *c; c++) {
		switch (*c) {
		case '&': fputs("&amp;", o); break;
		case '<': fputs("&lt;", o); break;
		case '>': fputs("&gt;", o); break;
		case '"': fputs("&quot;", o); break;
		case '\'': fputs("&#39;", o); break;
		default: fputc(*c, o);
		}
	}
}

#define W 640.0 /* chart width and height, in SVG units */
#define H 220.0
#define ML 64.0 /* margins: left (axis labels), right, top, bottom */
#define MR 12.0
#define MT 14.0
#define MB 34.0

/* A round step for an axis from 0 to max: 1, 2 or 5 times a power of ten, 4-8 steps. */
static double axis_step(double max)
{
	double p = pow(10, floor(log10(max > 0 ? max : 1)));
	double m = max / p; /* 1 <= m < 10 */

	return (m <= 2 ? 0.25 : m <= 5 ? 0.5 : 1) * p;
}

struct chart {
	FILE *o;
	size_t slots; /* x positions: one per round */
	double ymax;
};

static double cx(const struct chart *c, size_t i)
{
	return ML + (W - ML - MR) * ((double)i + 0.5) / (double)c->slots;
}

static double cy(const struct chart *c, double v)
{
	return MT + (H - MT - MB) * (1 - (v < 0 ? 0 : v > c->ymax ? c->ymax : v) / c->ymax);
}

/* The frame of a chart: the y grid with its labels, the round numbers below. */
static void chart_begin(struct chart *c, FILE *o, const char *id, const char *title, size_t slots, double ymax,
			const char *unit, bool last_is_switchover)
{
	double step = axis_step(ymax);

	c->o = o;
	c->slots = slots ? slots : 1;
	c->ymax = step * ceil((ymax > 0 ? ymax : 1) / step);
	fprintf(o, "<figure id=\"%s\"><figcaption>%s</figcaption>\n", id, title);
	fprintf(o, "<svg viewBox=\"0 0 %.0f %.0f\" role=\"img\" aria-label=\"%s\" data-slots=\"%zu\">\n", W, H,
		title, slots);
	for (double v = 0; v <= c->ymax + step / 2; v += step) {
		fprintf(o, "<line class=\"grid\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>", ML, W - MR, cy(c, v),
			cy(c, v));
		fprintf(o, "<text class=\"ylab\" x=\"%.1f\" y=\"%.1f\">%g%s</text>\n", ML - 6, cy(c, v) + 4, v,
			v == 0 ? "" : unit);
	}
	size_t every = c->slots > 20 ? (c->slots + 19) / 20 : 1;
	for (size_t i = 0; i < slots; i++) {
		if (i % every && i + 1 != slots)
			continue;
		bool sw = last_is_switchover && i + 1 == slots;
		fprintf(o, "<text class=\"xlab\" x=\"%.1f\" y=\"%.1f\">%s", cx(c, i), H - MB + 16, sw ? "sw" : "");
		if (!sw)
			fprintf(o, "%zu", i);
		fputs("</text>", o);
	}
	fprintf(o, "<text class=\"xlab\" x=\"%.1f\" y=\"%.1f\">round</text>\n", (ML + W - MR) / 2, H - 4);
}

static void chart_end(struct chart *c, const char *legend)
{
	fprintf(c->o, "</svg>%s</figure>\n", legend);
}

/* One point per value, joined: a polyline whose points attribute has exactly n pairs. */
static void chart_line(struct chart *c, const char *series, const double *v, size_t n, bool dashed)
{
	fprintf(c->o, "<polyline class=\"s-%s%s\" data-series=\"%s\" points=\"", series, dashed ? " dash" : "",
		series);
	for (size_t i = 0; i < n; i++)
		fprintf(c->o, "%s%.1f,%.1f", i ? " " : "", cx(c, i), cy(c, v[i]));
	fputs("\"/>\n", c->o);
	for (size_t i = 0; i < n && n <= 60 && !dashed; i++)
		fprintf(c->o, "<circle class=\"s-%s\" cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\"/>", series, cx(c, i),
			cy(c, v[i]));
	fputs("\n", c->o);
}

/* Stacked bars, one per slot: the parts of each bar from the bottom. */
static void chart_bars(struct chart *c, const char *const *series, const double *parts, size_t nparts,
		       size_t n)
{
	double bw = (W - ML - MR) / (double)c->slots * 0.7;

	for (size_t i = 0; i < n; i++) {
		double base = 0;
		for (size_t k = 0; k < nparts; k++) {
			double v = parts[i * nparts + k];
			if (v <= 0)
				continue;
			fprintf(c->o, "<rect class=\"s-%s\" data-round=\"%zu\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/>",
				series[k], i, cx(c, i) - bw / 2, cy(c, base + v), bw, cy(c, base) - cy(c, base + v));
			base += v;
		}
	}
	fputs("\n", c->o);
}

static const char style[] =
	"body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1d2330;max-width:60rem;"
	"margin:2rem auto;padding:0 1rem}h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;"
	"margin-top:2rem;border-bottom:1px solid #d5d9e0}.sub{color:#5a6270;margin-top:0}"
	"table{border-collapse:collapse}td,th{padding:.2rem .8rem .2rem 0;text-align:left;vertical-align:top}"
	"td.n{text-align:right;font-variant-numeric:tabular-nums}th{color:#5a6270;font-weight:normal}"
	".bad{color:#b3261e;font-weight:600}.ok{color:#1e7b34;font-weight:600}"
	"figure{margin:1.2rem 0;page-break-inside:avoid;break-inside:avoid}figcaption{font-weight:600}"
	"svg{width:100%;max-width:40rem;height:auto;display:block}"
	".grid{stroke:#e3e6eb;stroke-width:1}.ylab{font-size:11px;text-anchor:end;fill:#5a6270}"
	".xlab{font-size:11px;text-anchor:middle;fill:#5a6270}polyline{fill:none;stroke-width:2}"
	".dash{stroke-dasharray:6 4}.s-zero{fill:#c9ced6}.s-raw{fill:#3867d6}.s-compressed{fill:#20a39e}"
	".s-bytes{fill:#3867d6}polyline.s-rate{stroke:#3867d6}circle.s-rate{fill:#3867d6}"
	"polyline.s-dirty{stroke:#e8590c}circle.s-dirty{fill:#e8590c}polyline.s-left{stroke:#7048e8}"
	"circle.s-left{fill:#7048e8}polyline.s-estimate{stroke:#e8590c}circle.s-estimate{fill:#e8590c}"
	"polyline.s-limit{stroke:#5a6270}.s-actual{fill:#b3261e}"
	".key{display:inline-block;width:.8rem;height:.8rem;margin:0 .3rem 0 1rem;vertical-align:-1px}"
	".legend{font-size:13px;color:#5a6270}.tl rect{stroke:#fff;stroke-width:1}"
	".tl text{font-size:11px;fill:#1d2330}.p0{fill:#c9ced6}.p1{fill:#3867d6}.p2{fill:#20a39e}"
	".p3{fill:#7048e8}.p4{fill:#e3e6eb}"
	"@media print{body{margin:0;max-width:none;font-size:11pt}h2{page-break-after:avoid}}";

static void legend_key(FILE *o, const char *color, const char *label)
{
	fprintf(o, "<span class=\"key\" style=\"background:%s\"></span>%s", color, label);
}

/* A summary row: the label, and the value with its raw number for whoever checks it. */
static void row(FILE *o, const char *id, const char *label, double raw, const char *text)
{
	fprintf(o, "<tr><th>%s</th><td id=\"%s\" data-value=\"%.17g\">%s</td></tr>\n", label, id, raw, text);
}

static void summary(const struct migrate_report *r, FILE *o)
{
	struct json_object *f = r->final, *p = event_member(f, "params");
	char t[160], b[40];

	fputs("<h2>Summary</h2>\n<table>\n", o);
	snprintf(t, sizeof(t), "%.1f ms", event_num(f, "elapsed_ms"));
	row(o, "elapsed_ms", "total time", event_num(f, "elapsed_ms"), t);
	snprintf(t, sizeof(t), "%.1f ms (limit %.0f ms)", event_num(f, "downtime_ms"), event_num(p, "max_downtime_ms"));
	row(o, "downtime_ms", strncmp(event_str(p, "uri"), "file:", 5) ? "downtime" : "guest paused",
	    event_num(f, "downtime_ms"), t);
	snprintf(t, sizeof(t), "%.0f (%zu pre-copy, then the switchover)", event_num(f, "round") + 1, r->n);
	row(o, "rounds", "rounds", event_num(f, "round") + 1, t);
	migrate_bar_bytes(b, sizeof(b), event_num(f, "wire_bytes"));
	row(o, "wire_bytes", "on the wire", event_num(f, "wire_bytes"), b);
	snprintf(t, sizeof(t), "%.0f", event_num(f, "zero_pages"));
	row(o, "zero_pages", "zero pages (not sent)", event_num(f, "zero_pages"), t);
	snprintf(t, sizeof(t), "%.0f", event_num(f, "raw_pages"));
	row(o, "raw_pages", "pages sent raw", event_num(f, "raw_pages"), t);
	snprintf(t, sizeof(t), "%.0f", event_num(f, "zstd_pages"));
	row(o, "zstd_pages", "pages sent compressed with zstd", event_num(f, "zstd_pages"), t);
	snprintf(t, sizeof(t), "%.0f", event_num(f, "zlib_pages"));
	row(o, "zlib_pages", "pages sent compressed with zlib", event_num(f, "zlib_pages"), t);
	migrate_bar_bytes(b, sizeof(b), event_num(f, "ram_pages") * PAGE);
	row(o, "ram", "guest RAM", event_num(f, "ram_pages") * PAGE, b);
	if (r->n) {
		snprintf(t, sizeof(t), "%.1f MiB/s (last round)", r->rounds[r->n - 1].rate_mibs);
		row(o, "rate_mibs", "link rate", r->rounds[r->n - 1].rate_mibs, t);
	}
	fputs("<tr><th>security</th><td>", o);
	html(o, event_str(f, "security")[0] ? event_str(f, "security") : "none");
	fputs("</td></tr>\n<tr><th>options</th><td>", o);
	snprintf(t, sizeof(t), "--downtime %.0f --max-rounds %.0f --compress ", event_num(p, "max_downtime_ms"),
		 event_num(p, "max_rounds"));
	fputs(t, o);
	html(o, event_str(p, "compress"));
	fputs(" --on-timeout ", o);
	html(o, event_str(p, "on_timeout"));
	if (event_num(p, "bandwidth") > 0) {
		migrate_bar_bytes(b, sizeof(b), event_num(p, "bandwidth"));
		fprintf(o, " --bandwidth %s/s", b);
	}
	if (event_flag(p, "offline"))
		fputs(" --offline", o);
	if (event_flag(p, "live"))
		fputs(" --live", o);
	fputs("</td></tr>\n</table>\n", o);
}

static void charts(const struct migrate_report *r, FILE *o)
{
	static const char *const kinds[] = { "zero", "raw", "compressed" };
	struct json_object *f = r->final, *p = event_member(f, "params");
	size_t n = r->n, slots = n + 1;
	double *parts = calloc(slots * 3, sizeof(double)), *v = calloc(slots * 2, sizeof(double));
	double *v2 = v ? v + slots : NULL, ymax = 0;
	struct chart c;

	if (!parts || !v) {
		free(parts);
		free(v);
		return;
	}
	fputs("<h2>Rounds</h2>\n", o);
	/* Pages and bytes: every pre-copy round, then the switchover's last pages. */
	for (size_t i = 0; i < slots; i++) {
		const struct report_round *x = i < n ? &r->rounds[i] : NULL;
		parts[i * 3] = x ? x->zero : event_num(f, "zero_pages") - r->zero;
		parts[i * 3 + 1] = x ? x->raw : event_num(f, "raw_pages") - r->raw;
		parts[i * 3 + 2] = x ? x->compressed : compressed_pages(f) - r->compressed;
		v[i] = x ? x->bytes : event_num(f, "wire_bytes") - r->wire;
		double sum = parts[i * 3] + parts[i * 3 + 1] + parts[i * 3 + 2];
		ymax = sum > ymax ? sum : ymax;
	}
	chart_begin(&c, o, "chart-pages", "Pages per round: zero (elided), raw and compressed", slots, ymax, "",
		    true);
	chart_bars(&c, kinds, parts, 3, slots);
	fputs("</svg><p class=\"legend\">", o);
	legend_key(o, "#c9ced6", "zero");
	legend_key(o, "#3867d6", "raw");
	legend_key(o, "#20a39e", "compressed");
	fputs("; &ldquo;sw&rdquo; is the switchover, with the guest paused</p></figure>\n", o);

	ymax = 0;
	for (size_t i = 0; i < slots; i++) {
		v[i] /= MIB;
		ymax = v[i] > ymax ? v[i] : ymax;
	}
	chart_begin(&c, o, "chart-bytes", "MiB on the wire per round", slots, ymax, "", true);
	chart_bars(&c, (const char *const[]){ "bytes" }, v, 1, slots);
	chart_end(&c, "");

	if (n == 0) {
		fputs("<p>No pre-copy rounds: the guest was paused for the whole copy.</p>\n", o);
		free(parts);
		free(v);
		return;
	}
	ymax = 0;
	for (size_t i = 0; i < n; i++) {
		v[i] = r->rounds[i].rate_mibs;
		v2[i] = r->rounds[i].dirty_rate_mibs;
		ymax = fmax(ymax, fmax(v[i], v2[i]));
	}
	chart_begin(&c, o, "chart-rates", "Link rate and the guest's dirty rate (MiB/s)", n, ymax, "", false);
	chart_line(&c, "rate", v, n, false);
	chart_line(&c, "dirty", v2, n, false);
	fputs("</svg><p class=\"legend\">", o);
	legend_key(o, "#3867d6", "link");
	legend_key(o, "#e8590c", "guest dirtying");
	fputs("</p></figure>\n", o);

	ymax = 0;
	for (size_t i = 0; i < n; i++) {
		v[i] = r->rounds[i].remaining_pages * PAGE / MIB;
		ymax = fmax(ymax, v[i]);
	}
	chart_begin(&c, o, "chart-left", "MiB left to send after each round", n, ymax, "", false);
	chart_line(&c, "left", v, n, false);
	chart_end(&c, "");

	double limit = event_num(p, "max_downtime_ms"), down = event_num(f, "downtime_ms");
	ymax = fmax(limit, down);
	for (size_t i = 0; i < n; i++) {
		v[i] = r->rounds[i].expected_downtime_ms;
		v2[i] = limit;
		ymax = fmax(ymax, v[i]);
	}
	chart_begin(&c, o, "chart-downtime", "Estimated downtime after each round, the limit, and the downtime "
		    "measured (ms)", n, ymax, "", false);
	chart_line(&c, "estimate", v, n, false);
	chart_line(&c, "limit", v2, n, true);
	fprintf(o, "<rect class=\"s-actual\" x=\"%.1f\" y=\"%.1f\" width=\"8\" height=\"8\"/>", cx(&c, n - 1) - 4,
		cy(&c, down) - 4);
	fputs("</svg><p class=\"legend\">", o);
	legend_key(o, "#e8590c", "estimated");
	legend_key(o, "#5a6270", "limit");
	legend_key(o, "#b3261e", "measured at the switchover");
	fputs("</p></figure>\n", o);
	free(parts);
	free(v);
}

/* The switchover as a timeline: each step's share of the time, and a table of them. */
static void timeline(const struct migrate_report *r, FILE *o)
{
	static const char *const names[] = { "pause vCPUs and devices", "last pages", "vCPU, VM and device state",
					     "the state crosses, the destination loads it", "the answer comes back" };
	static const char *const keys[] = { "pause_ms", "last_pages_ms", "state_ms", "load_ms", "confirm_ms" };
	struct json_object *sw = event_member(r->final, "switchover");
	double ms[5], total = 0, x = ML;

	if (!sw)
		return;
	for (int i = 0; i < 5; i++) {
		ms[i] = event_num(sw, keys[i]);
		total += ms[i] > 0 ? ms[i] : 0;
	}
	fputs("<h2>Switchover</h2>\n<figure id=\"timeline\"><figcaption>The guest is paused from the first "
	      "step until it runs on the destination; the last step runs while it already "
	      "runs there</figcaption>\n",
	      o);
	fprintf(o, "<svg class=\"tl\" viewBox=\"0 0 %.0f 70\" role=\"img\" aria-label=\"switchover timeline\">\n", W);
	for (int i = 0; i < 5 && total > 0; i++) {
		double w = (W - ML - MR) * (ms[i] > 0 ? ms[i] : 0) / total;
		fprintf(o, "<rect class=\"p%d\" data-step=\"%s\" x=\"%.1f\" y=\"10\" width=\"%.1f\" height=\"26\"/>", i,
			keys[i], x, w);
		if (w > 40)
			fprintf(o, "<text x=\"%.1f\" y=\"52\">%.1f ms</text>", x + 2, ms[i]);
		x += w;
	}
	fputs("\n</svg><p class=\"legend\">", o);
	static const char *const colors[] = { "#c9ced6", "#3867d6", "#20a39e", "#7048e8", "#e3e6eb" };
	for (int i = 0; i < 5; i++)
		legend_key(o, colors[i], names[i]);
	fputs("</p></figure>\n<table>\n", o);
	for (int i = 0; i < 5; i++) {
		char t[64];
		if (i == 1)
			snprintf(t, sizeof(t), "%.2f ms (%.0f pages)", ms[i], event_num(sw, "last_pages"));
		else
			snprintf(t, sizeof(t), "%.2f ms", ms[i]);
		row(o, keys[i], names[i], ms[i], t);
	}
	fputs("</table>\n", o);
}

int migrate_report_write(const struct migrate_report *r, FILE *o)
{
	struct json_object *f = r->final, *p = event_member(f, "params");
	const char *uri = event_str(p, "uri");
	bool done = f && !strcmp(event_str(f, "event"), "migration-done");
	bool to_file = !strncmp(uri, "file:", 5);
	char why[4096];

	fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
	      "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\n<title>hv: ",
	      o);
	html(o, to_file ? "save of " : "migration of ");
	html(o, event_str(f, "vm"));
	fprintf(o, "</title>\n<style>%s</style></head><body>\n<h1>", style);
	html(o, to_file ? "Save of " : "Migration of ");
	html(o, event_str(f, "vm")[0] ? event_str(f, "vm") : "a VM");
	html(o, to_file ? " to " : " to ");
	html(o, to_file ? uri + 5 : uri);
	fprintf(o, "</h1>\n<p class=\"sub\"><span class=\"%s\" id=\"outcome\">%s</span>", done ? "ok" : "bad",
		done ? "done" : f ? "failed" : "incomplete log");
	if (f && !done) {
		fputs(": ", o);
		html(o, event_str(f, "error"));
	}
	fputs("</p>\n", o);
	migrate_report_why(r, why, sizeof(why));
	fputs("<p id=\"why\">", o);
	html(o, why);
	fputs("</p>\n", o);
	if (f) {
		summary(r, o);
		charts(r, o);
		timeline(r, o);
	}
	fputs("<p class=\"legend\">Written by hv from the events of <code>hvctl migrate --json</code>.</p>\n"
	      "</body></html>\n",
	      o);
	return ferror(o) ? -1 : 0;
}

int migrate_report_save(const struct migrate_report *r, const char *path)
{
	char tmp[4096 + 16];
	int fd;
	FILE *f;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= sizeof(tmp)) {
		hv_error("report file name '%.40s...' is too long", path);
		return -1;
	}
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		hv_error("cannot write the report '%s': %s", path, strerror(errno));
		return -1;
	}
	fchmod(fd, 0644);
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		unlink(tmp);
		hv_error("cannot write the report '%s': %s", path, strerror(errno));
		return -1;
	}
	int w = migrate_report_write(r, f);
	int e = errno;
	if (fclose(f) != 0 && !w) {
		w = -1;
		e = errno;
	}
	if (w < 0 || rename(tmp, path) < 0) {
		if (!w)
			e = errno;
		unlink(tmp);
		hv_error("cannot write the report '%s': %s", path, strerror(e));
		return -1;
	}
	return 0;
}
