/*
 * The fault-injecting HTTP/1.1 forwarder of the S3 tests (see proxy.h).
 */
#include "proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_RULES 32
#define MAX_HEAD  (64 << 10)
#define MAX_LOG   100000

typedef struct conn {
	struct conn *next;
	tp_proxy *p;
	int fd;
	pthread_t thread;
	int started;
	int done; /* the thread finished (under p->lock): join it */
} conn;

/* A request, logged when it arrives; its status is set when it is answered
 * (the client may see the answer before the proxy has finished with it). */
typedef struct log_entry {
	char *text; /* "METHOD TARGET" */
	char *head; /* with capture on: the request's head as received, else NULL */
	char *body; /* with capture on: its body (body_len bytes), else NULL */
	size_t body_len;
	unsigned long id;
	int status; /* PENDING until answered; 0 for a dropped connection */
} log_entry;
#define PENDING (-2)

typedef struct rule_state {
	tp_rule r;
	char method[16];
	char needle[256];
	char code[64];
	int seen; /* matching requests so far */
} rule_state;

struct tp_proxy {
	int lfd;
	int port;
	char endpoint[64];
	char up_host[64];
	int up_port;
	pthread_t acceptor;
	pthread_mutex_t lock; /* guards everything below */
	int stopping;
	conn *conns;
	rule_state rules[MAX_RULES];
	int nrules;
	struct log_entry *log;
	size_t nlog, caplog;
	unsigned long seq; /* id of the next entry */
	int capture;       /* tp_capture */
	int active, max_active;
};

static int write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;

	while (n > 0) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* Logs a request; returns its id (0 if it could not be logged). */
static unsigned long log_add(tp_proxy *p, const char *method, const char *target, const char *head,
                             size_t headlen, const char *body, size_t blen)
{
	unsigned long id = 0;
	char *e = malloc(strlen(method) + strlen(target) + 2), *hc = NULL, *bc = NULL;
	int capture;

	if (e == NULL)
		return 0;
	sprintf(e, "%s %s", method, target);
	pthread_mutex_lock(&p->lock);
	capture = p->capture;
	pthread_mutex_unlock(&p->lock);
	if (capture) {
		hc = malloc(headlen + 1);
		bc = malloc(blen + 1);
		if (hc == NULL || bc == NULL) {
			free(hc);
			free(bc);
			free(e);
			return 0;
		}
		memcpy(hc, head, headlen);
		hc[headlen] = '\0';
		memcpy(bc, body, blen);
		bc[blen] = '\0';
	}
	pthread_mutex_lock(&p->lock);
	if (p->nlog == p->caplog && p->nlog < MAX_LOG) {
		size_t cap = p->caplog ? p->caplog * 2 : 256;
		log_entry *l = realloc(p->log, cap * sizeof(*l));
		if (l != NULL) {
			p->log = l;
			p->caplog = cap;
		}
	}
	if (p->nlog < p->caplog) {
		id = ++p->seq;
		p->log[p->nlog].text = e;
		p->log[p->nlog].head = hc;
		p->log[p->nlog].body = bc;
		p->log[p->nlog].body_len = blen;
		hc = bc = NULL;
		p->log[p->nlog].id = id;
		p->log[p->nlog].status = PENDING;
		p->nlog++;
		e = NULL;
	}
	pthread_mutex_unlock(&p->lock);
	free(e);
	free(hc);
	free(bc);
	return id;
}

static void log_status(tp_proxy *p, unsigned long id, int status)
{
	size_t i;

	pthread_mutex_lock(&p->lock);
	for (i = p->nlog; i > 0; i--) {
		if (p->log[i - 1].id == id) {
			p->log[i - 1].status = status;
			break;
		}
	}
	pthread_mutex_unlock(&p->lock);
}

/* The first rule that matches (and counts the match); copied into *out.
 * Returns 1 if a fault is to be injected. */
static int match_rule(tp_proxy *p, const char *method, const char *target, rule_state *out)
{
	int i, fault = 0;

	pthread_mutex_lock(&p->lock);
	for (i = 0; i < p->nrules; i++) {
		rule_state *r = &p->rules[i];
		if (r->r.method != NULL && strcmp(r->method, method) != 0)
			continue;
		if (r->r.needle != NULL && strstr(target, r->needle) == NULL)
			continue;
		r->seen++;
		if (r->seen > r->r.skip && (r->r.times < 0 || r->seen <= r->r.skip + r->r.times)) {
			*out = *r;
			fault = 1;
		}
		break;
	}
	pthread_mutex_unlock(&p->lock);
	return fault;
}

/* Reads until "\r\n\r\n": the head (NUL-terminated) and any body bytes after it. */
static int read_head(int fd, char *buf, size_t cap, size_t *headlen, size_t *got)
{
	size_t n = 0;

	for (;;) {
		ssize_t k;
		char *end;
		if (n + 1 >= cap)
			return -1;
		k = recv(fd, buf + n, cap - 1 - n, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		n += (size_t)k;
		buf[n] = '\0';
		end = strstr(buf, "\r\n\r\n");
		if (end != NULL) {
			*headlen = (size_t)(end - buf) + 4;
			*got = n;
			return 0;
		}
	}
}

static const char *header_value(const char *head, const char *name, char *out, size_t len)
{
	const char *line = strstr(head, "\r\n");
	size_t k = strlen(name);

	while (line != NULL && line[2] != '\r') {
		const char *h = line + 2;
		const char *eol = strstr(h, "\r\n");
		if (eol == NULL)
			break;
		if ((size_t)(eol - h) > k && strncasecmp(h, name, k) == 0 && h[k] == ':') {
			const char *v = h + k + 1;
			size_t n;
			while (*v == ' ')
				v++;
			n = (size_t)(eol - v);
			if (n >= len)
				n = len - 1;
			memcpy(out, v, n);
			out[n] = '\0';
			return out;
		}
		line = eol;
	}
	return NULL;
}

static int connect_upstream(tp_proxy *p)
{
	struct sockaddr_in a;
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	if (fd < 0)
		return -1;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((unsigned short)p->up_port);
	if (inet_pton(AF_INET, p->up_host, &a.sin_addr) != 1 ||
	    connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* One request on the client connection c. */
static void handle(conn *c)
{
	tp_proxy *p = c->p;
	char *head = malloc(MAX_HEAD), *body = NULL, *fwd = NULL;
	char method[16] = "", target[4096] = "", tmp[64];
	size_t headlen = 0, got = 0, blen = 0, have;
	rule_state rule;
	int up = -1, status = 0;
	unsigned long id;

	if (head == NULL || read_head(c->fd, head, MAX_HEAD, &headlen, &got) != 0)
		goto out;
	if (sscanf(head, "%15s %4095s", method, target) != 2)
		goto out;
	if (header_value(head, "Content-Length", tmp, sizeof(tmp)) != NULL)
		blen = (size_t)strtoull(tmp, NULL, 10);
	if (header_value(head, "Expect", tmp, sizeof(tmp)) != NULL && strcasecmp(tmp, "100-continue") == 0 &&
	    got - headlen < blen) {
		static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
		if (write_all(c->fd, cont, sizeof(cont) - 1) != 0)
			goto out;
	}
	body = malloc(blen + 1);
	if (body == NULL)
		goto out;
	have = got - headlen;
	if (have > blen)
		have = blen;
	memcpy(body, head + headlen, have);
	while (have < blen) {
		ssize_t k = recv(c->fd, body + have, blen - have, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			goto out;
		have += (size_t)k;
	}

	id = log_add(p, method, target, head, headlen, body, blen);
	pthread_mutex_lock(&p->lock);
	if (++p->active > p->max_active)
		p->max_active = p->active;
	pthread_mutex_unlock(&p->lock);

	if (match_rule(p, method, target, &rule)) {
		/* The log first: the client may go on as soon as it has the answer. */
		log_status(p, id, rule.r.action == TP_STATUS ? rule.r.status : 0);
		if (rule.r.action == TP_STATUS) {
			char resp[1024];
			char xml[512];
			int n = snprintf(xml, sizeof(xml),
			                 "<?xml version=\"1.0\" "
			                 "encoding=\"UTF-8\"?>\n<Error><Code>%s</Code><Message>injected "
			                 "by the test proxy</Message></Error>",
			                 rule.code);
			int m = snprintf(
			        resp, sizeof(resp),
			        "HTTP/1.1 %d Injected\r\nContent-Type: application/xml\r\nContent-Length: "
			        "%d\r\nConnection: close\r\n\r\n%s",
			        rule.r.status, n, xml);
			(void)write_all(c->fd, resp, (size_t)m);
		}
		goto done;
	}

	/* Forward: the head without Expect and Connection, plus Connection: close. */
	fwd = malloc(headlen + 64);
	if (fwd == NULL)
		goto done;
	{
		const char *line = head;
		size_t n = 0;
		while (line < head + headlen - 2) {
			const char *eol = strstr(line, "\r\n");
			size_t k = (size_t)(eol - line) + 2;
			if (strncasecmp(line, "Expect:", 7) != 0 &&
			    strncasecmp(line, "Connection:", 11) != 0) {
				memcpy(fwd + n, line, k);
				n += k;
			}
			line = eol + 2;
		}
		n += (size_t)sprintf(fwd + n, "Connection: close\r\n\r\n");
		up = connect_upstream(p);
		if (up < 0 || write_all(up, fwd, n) != 0 || (blen > 0 && write_all(up, body, blen) != 0)) {
			log_status(p, id, 0);
			goto done;
		}
	}
	{
		char buf[65536];
		int first = 1;

		for (;;) {
			ssize_t k = recv(up, buf, sizeof(buf), 0);
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0)
				break;
			if (first) {
				if (k > 9 && strncmp(buf, "HTTP/1.", 7) == 0)
					status = atoi(buf + 9);
				/* Before the client can see the answer. */
				log_status(p, id, status);
				first = 0;
			}
			if (write_all(c->fd, buf, (size_t)k) != 0)
				break;
		}
		if (first)
			log_status(p, id, 0); /* upstream closed without an answer */
	}
done:
	pthread_mutex_lock(&p->lock);
	p->active--;
	pthread_mutex_unlock(&p->lock);
out:
	if (up >= 0)
		close(up);
	free(fwd);
	free(body);
	free(head);
}

static void *conn_thread(void *arg)
{
	conn *c = arg;

	handle(c);
	shutdown(c->fd, SHUT_RDWR);
	close(c->fd);
	pthread_mutex_lock(&c->p->lock);
	c->fd = -1;
	c->done = 1;
	pthread_mutex_unlock(&c->p->lock);
	return NULL;
}

/* Joins and frees the connections whose threads have finished. */
static void reap(tp_proxy *p)
{
	conn **pp, *c, *dead = NULL;

	pthread_mutex_lock(&p->lock);
	for (pp = &p->conns; (c = *pp) != NULL;) {
		if (c->done) {
			*pp = c->next;
			c->next = dead;
			dead = c;
		} else {
			pp = &c->next;
		}
	}
	pthread_mutex_unlock(&p->lock);
	while (dead != NULL) {
		c = dead;
		dead = c->next;
		pthread_join(c->thread, NULL);
		free(c);
	}
}

static void *accept_thread(void *arg)
{
	tp_proxy *p = arg;

	for (;;) {
		struct pollfd pf = {p->lfd, POLLIN, 0};
		int fd, stop;
		conn *c;
		pthread_mutex_lock(&p->lock);
		stop = p->stopping;
		pthread_mutex_unlock(&p->lock);
		if (stop)
			break;
		reap(p);
		if (poll(&pf, 1, 100) <= 0)
			continue;
		fd = accept(p->lfd, NULL, NULL);
		if (fd < 0)
			continue;
		c = calloc(1, sizeof(*c));
		if (c == NULL) {
			close(fd);
			continue;
		}
		c->p = p;
		c->fd = fd;
		if (pthread_create(&c->thread, NULL, conn_thread, c) != 0) {
			close(fd);
			free(c);
			continue;
		}
		c->started = 1;
		pthread_mutex_lock(&p->lock);
		c->next = p->conns;
		p->conns = c;
		pthread_mutex_unlock(&p->lock);
	}
	return NULL;
}

tp_proxy *tp_start(const char *upstream)
{
	tp_proxy *p = calloc(1, sizeof(*p));
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);
	const char *hp;
	char *colon;

	if (p == NULL)
		return NULL;
	hp = strncmp(upstream, "http://", 7) == 0 ? upstream + 7 : upstream;
	snprintf(p->up_host, sizeof(p->up_host), "%s", hp);
	colon = strchr(p->up_host, ':');
	if (colon == NULL) {
		fprintf(stderr, "tp_start: upstream '%s' has no port\n", upstream);
		free(p);
		return NULL;
	}
	*colon = '\0';
	p->up_port = atoi(colon + 1);
	if (strcmp(p->up_host, "localhost") == 0)
		snprintf(p->up_host, sizeof(p->up_host), "127.0.0.1");
	pthread_mutex_init(&p->lock, NULL);
	p->lfd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = 0;
	if (p->lfd < 0 || bind(p->lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(p->lfd, 128) != 0 ||
	    getsockname(p->lfd, (struct sockaddr *)&a, &alen) != 0) {
		fprintf(stderr, "tp_start: cannot listen on 127.0.0.1: %s\n", strerror(errno));
		if (p->lfd >= 0)
			close(p->lfd);
		pthread_mutex_destroy(&p->lock);
		free(p);
		return NULL;
	}
	p->port = ntohs(a.sin_port);
	snprintf(p->endpoint, sizeof(p->endpoint), "http://127.0.0.1:%d", p->port);
	if (pthread_create(&p->acceptor, NULL, accept_thread, p) != 0) {
		close(p->lfd);
		pthread_mutex_destroy(&p->lock);
		free(p);
		return NULL;
	}
	return p;
}

void tp_stop(tp_proxy *p)
{
	conn *c, *next;
	size_t i;

	if (p == NULL)
		return;
	pthread_mutex_lock(&p->lock);
	p->stopping = 1;
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->acceptor, NULL);
	close(p->lfd);
	for (c = p->conns; c != NULL; c = next) {
		next = c->next;
		if (c->started)
			pthread_join(c->thread, NULL);
		free(c);
	}
	for (i = 0; i < p->nlog; i++) {
		free(p->log[i].text);
		free(p->log[i].head);
		free(p->log[i].body);
	}
	free(p->log);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

const char *tp_endpoint(const tp_proxy *p)
{
	return p->endpoint;
}

void tp_add_rule(tp_proxy *p, const tp_rule *r)
{
	pthread_mutex_lock(&p->lock);
	if (p->nrules < MAX_RULES) {
		rule_state *s = &p->rules[p->nrules++];
		memset(s, 0, sizeof(*s));
		s->r = *r;
		if (r->method != NULL)
			snprintf(s->method, sizeof(s->method), "%s", r->method);
		if (r->needle != NULL)
			snprintf(s->needle, sizeof(s->needle), "%s", r->needle);
		snprintf(s->code, sizeof(s->code), "%s", r->code != NULL ? r->code : "InternalError");
		s->r.code = NULL; /* use the copies */
	}
	pthread_mutex_unlock(&p->lock);
}

void tp_clear_rules(tp_proxy *p)
{
	pthread_mutex_lock(&p->lock);
	p->nrules = 0;
	pthread_mutex_unlock(&p->lock);
}

size_t tp_log_count(tp_proxy *p)
{
	size_t n;

	pthread_mutex_lock(&p->lock);
	n = p->nlog;
	pthread_mutex_unlock(&p->lock);
	return n;
}

char *tp_log_entry(tp_proxy *p, size_t i, char *buf, size_t len)
{
	char *r = NULL;

	pthread_mutex_lock(&p->lock);
	if (i < p->nlog) {
		snprintf(buf, len, "%s %d", p->log[i].text, p->log[i].status);
		r = buf;
	}
	pthread_mutex_unlock(&p->lock);
	return r;
}

size_t tp_log_match(tp_proxy *p, const char *method, const char *needle, int status)
{
	size_t i, n = 0, ml = method != NULL ? strlen(method) : 0;

	pthread_mutex_lock(&p->lock);
	for (i = 0; i < p->nlog; i++) {
		const char *e = p->log[i].text;
		int st = p->log[i].status;
		if (method != NULL && (strncmp(e, method, ml) != 0 || e[ml] != ' '))
			continue;
		if (needle != NULL && strstr(e, needle) == NULL)
			continue;
		if (status > 0 && st != status)
			continue;
		if (status < 0 && st != 0)
			continue;
		if (status > 0 && st == PENDING)
			continue;
		n++;
	}
	pthread_mutex_unlock(&p->lock);
	return n;
}

int tp_max_concurrent(tp_proxy *p)
{
	int n;

	pthread_mutex_lock(&p->lock);
	n = p->max_active;
	pthread_mutex_unlock(&p->lock);
	return n;
}

void tp_log_clear(tp_proxy *p)
{
	size_t i;

	pthread_mutex_lock(&p->lock);
	for (i = 0; i < p->nlog; i++) {
		free(p->log[i].text);
		free(p->log[i].head);
		free(p->log[i].body);
	}
	p->nlog = 0;
	p->max_active = 0;
	pthread_mutex_unlock(&p->lock);
}

void tp_capture(tp_proxy *p, int on)
{
	pthread_mutex_lock(&p->lock);
	p->capture = on;
	pthread_mutex_unlock(&p->lock);
}

int tp_log_request(tp_proxy *p, size_t i, char **head, char **body, size_t *body_len)
{
	int rc = -1;

	*head = *body = NULL;
	*body_len = 0;
	pthread_mutex_lock(&p->lock);
	if (i < p->nlog && p->log[i].head != NULL) {
		size_t hl = strlen(p->log[i].head);
		*head = malloc(hl + 1);
		*body = malloc(p->log[i].body_len + 1);
		if (*head != NULL && *body != NULL) {
			memcpy(*head, p->log[i].head, hl + 1);
			memcpy(*body, p->log[i].body, p->log[i].body_len + 1);
			*body_len = p->log[i].body_len;
			rc = 0;
		} else {
			free(*head);
			free(*body);
			*head = *body = NULL;
		}
	}
	pthread_mutex_unlock(&p->lock);
	return rc;
}
