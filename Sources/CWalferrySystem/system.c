// renameat2 is declared by glibc's <stdio.h> under _GNU_SOURCE only (glibc 2.28 and later).
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include "walferry_system.h"

int walferry_rename_noreplace(int olddirfd, const char *oldname, int newdirfd, const char *newname) {
    return renameat2(olddirfd, oldname, newdirfd, newname, RENAME_NOREPLACE);
}

int walferry_syncfs(int fd) {
    return syncfs(fd);
}

int walferry_rename_exchange(int olddirfd, const char *oldname, int newdirfd, const char *newname) {
    return renameat2(olddirfd, oldname, newdirfd, newname, RENAME_EXCHANGE);
}

int walferry_start_writeback(int fd) {
    return sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
}
