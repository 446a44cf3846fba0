/*
 * THE WRONG WAY. Do not copy this program: it is the seed article's bug,
 * kept so that tests/nfs/run.sh can show it losing updates across hosts.
 *
 * It increments a decimal counter in FILE COUNT times. Each increment takes
 * a POSIX (fcntl) lock on the data file itself, then, as the seed's code
 * did deep in a library, opens and closes the same file once more (here:
 * to "check its size"). POSIX locks belong to the process and the inode,
 * and closing ANY descriptor of the file drops them, so from that close on
 * the read-modify-write runs unlocked and another process or host can
 * interleave. (A guard file that is never closed while locked, as txfile
 * uses, is the fix.)
 *
 *   naive_counter FILE COUNT
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void lock(int fd, short type) {
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    if (fcntl(fd, F_SETLKW, &fl) != 0) {
        perror("fcntl");
        exit(1);
    }
}

/* The unrelated open and close that silently drops the lock. */
static long size_of(const char *path) {
    struct stat st;
    int fd = open(path, O_RDONLY);
    if (fd < 0 || fstat(fd, &st) != 0) {
        perror(path);
        exit(1);
    }
    close(fd);
    return (long)st.st_size;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: naive_counter FILE COUNT\n");
        return 2;
    }
    const char *path = argv[1];
    long count = atol(argv[2]);
    for (long i = 0; i < count; i++) {
        int fd = open(path, O_RDWR | O_CREAT, 0666);
        if (fd < 0) {
            perror(path);
            return 1;
        }
        lock(fd, F_WRLCK);
        (void)size_of(path);
        char buf[32] = {0};
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        long value = n > 0 ? atol(buf) : 0;
        usleep(1000); /* the work a real program does between read and write */
        int len = snprintf(buf, sizeof buf, "%ld\n", value + 1);
        if (pwrite(fd, buf, (size_t)len, 0) != len || ftruncate(fd, len) != 0) {
            perror("write");
            return 1;
        }
        lock(fd, F_UNLCK);
        close(fd);
    }
    printf("NAIVE commits=%ld\n", count);
    return 0;
}
