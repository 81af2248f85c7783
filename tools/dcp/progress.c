/*
 * A one-line progress display on stderr, redrawn each time a rank finishes a
 * phase. Drawn only when stderr is a terminal, so logs and pipes never see
 * carriage returns or escape codes.
 */
#include <string.h>
#include <unistd.h>

#include "dcp_tool.h"

void progress_init(progress *p, const char *title, int nranks, const char *const *phases, int nphases)
{
	memset(p, 0, sizeof(*p));
	pthread_mutex_init(&p->lock, NULL);
	p->enabled = isatty(STDERR_FILENO) == 1;
	p->title = title;
	p->nranks = nranks;
	p->nphases = nphases < PROGRESS_MAX_PHASES ? nphases : PROGRESS_MAX_PHASES;
	for (int i = 0; i < p->nphases; i++)
		p->phases[i] = phases[i];
	p->t0 = tool_now();
}

/* Called with the lock held. */
static void progress_draw(progress *p)
{
	enum { WIDTH = 24 };
	int total = p->nranks * p->nphases;
	int done = 0;
	for (int i = 0; i < p->nphases; i++)
		done += p->done[i];
	int fill = total > 0 ? done * WIDTH / total : WIDTH;
	char bar[WIDTH + 1];
	for (int i = 0; i < WIDTH; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[WIDTH] = '\0';

	fprintf(stderr, "\r\033[K%s [%s]", p->title, bar);
	for (int i = 0; i < p->nphases; i++)
		fprintf(stderr, " %s %d/%d", p->phases[i], p->done[i], p->nranks);
	fprintf(stderr, "  %.1fs", tool_now() - p->t0);
	fflush(stderr);
	p->drawn = 1;
}

void progress_step(progress *p, int phase)
{
	if (p == NULL || !p->enabled || phase < 0 || phase >= p->nphases)
		return;
	pthread_mutex_lock(&p->lock);
	p->done[phase]++;
	progress_draw(p);
	pthread_mutex_unlock(&p->lock);
}

void progress_finish(progress *p)
{
	if (p == NULL)
		return;
	if (p->drawn) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
	}
	pthread_mutex_destroy(&p->lock);
}
