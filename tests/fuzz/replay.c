/* SPDX-License-Identifier: Apache-2.0 */
/* Drives a fuzz target without libFuzzer, so every build (the ASan one
 * included) runs it: each seed file as it is, then N deterministic
 * mutations of the seeds (bit flips, byte changes, insertions, deletions,
 * truncations, splices).
 *   replay [--mutations N] FILE|DIR...
 * With clang, -Dfuzz=true builds the same targets against libFuzzer. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct seed {
	uint8_t *data;
	size_t size;
};

static struct seed *seeds;
static size_t n_seeds;
static uint64_t state = 0x9e3779b97f4a7c15ULL;

static uint64_t next_random(void)
{
	state ^= state << 13;
	state ^= state >> 7;
	state ^= state << 17;
	return state;
}

static void add_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	struct seed s = { 0 };
	long len;

	if (!f) {
		perror(path);
		exit(2);
	}
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	s.data = malloc((size_t)len + 1);
	s.size = fread(s.data, 1, (size_t)len, f);
	fclose(f);
	seeds = realloc(seeds, (n_seeds + 1) * sizeof(*seeds));
	seeds[n_seeds++] = s;
}

static void add_path(const char *path)
{
	struct stat st;
	struct dirent *e;
	DIR *d;

	if (stat(path, &st) != 0) {
		perror(path);
		exit(2);
	}
	if (!S_ISDIR(st.st_mode)) {
		add_file(path);
		return;
	}
	d = opendir(path);
	while ((e = readdir(d)) != NULL) {
		char child[4096];

		if (e->d_name[0] == '.')
			continue;
		snprintf(child, sizeof(child), "%s/%s", path, e->d_name);
		add_file(child);
	}
	closedir(d);
}

static size_t mutate(uint8_t *buf, size_t size, size_t cap)
{
	const struct seed *other = &seeds[next_random() % n_seeds];
	size_t pos = size ? next_random() % size : 0;

	switch (next_random() % 6) {
	case 0: /* flip a bit */
		if (size)
			buf[pos] ^= (uint8_t)(1u << (next_random() % 8));
		break;
	case 1: /* an interesting byte */
		if (size) {
			static const uint8_t bytes[] = { 0,   '"', '\\', '{',  '}',  '[',  ']', ',',
							 ';', '=', '%',  '\n', 0xff, 0x80, '+', '#' };
			buf[pos] = bytes[next_random() % sizeof(bytes)];
		}
		break;
	case 2: /* insert */
		if (size + 1 < cap) {
			memmove(buf + pos + 1, buf + pos, size - pos);
			buf[pos] = (uint8_t)next_random();
			size++;
		}
		break;
	case 3: /* delete a run */
		if (size) {
			size_t len = 1 + next_random() % (size - pos);

			memmove(buf + pos, buf + pos + len, size - pos - len);
			size -= len;
		}
		break;
	case 4: /* truncate */
		size = pos;
		break;
	default: /* splice in a piece of another seed */
		if (other->size) {
			size_t from = next_random() % other->size;
			size_t len = 1 + next_random() % (other->size - from);

			if (pos + len > cap)
				len = cap - pos;
			memcpy(buf + pos, other->data + from, len);
			if (pos + len > size)
				size = pos + len;
		}
		break;
	}
	return size;
}

int main(int argc, char **argv)
{
	unsigned long mutations = 0;
	uint8_t *buf;
	size_t cap = 1;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--mutations") == 0 && i + 1 < argc)
			mutations = strtoul(argv[++i], NULL, 10);
		else
			add_path(argv[i]);
	}
	if (n_seeds == 0) {
		fprintf(stderr, "usage: replay [--mutations N] FILE|DIR...\n");
		return 2;
	}
	for (size_t i = 0; i < n_seeds; i++) {
		LLVMFuzzerTestOneInput(seeds[i].data, seeds[i].size);
		if (seeds[i].size * 2 + 64 > cap)
			cap = seeds[i].size * 2 + 64;
	}
	buf = malloc(cap);
	for (unsigned long m = 0; m < mutations; m++) {
		const struct seed *s = &seeds[m % n_seeds];
		size_t size = s->size;
		int rounds = 1 + (int)(next_random() % 4);

		memcpy(buf, s->data, size);
		while (rounds-- > 0)
			size = mutate(buf, size, cap);
		LLVMFuzzerTestOneInput(buf, size);
	}
	printf("%zu seeds, %lu mutations: no crash\n", n_seeds, mutations);
	free(buf);
	for (size_t i = 0; i < n_seeds; i++)
		free(seeds[i].data);
	free(seeds);
	return 0;
}
