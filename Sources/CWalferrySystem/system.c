// renameat2 is declared by glibc's <stdio.h> under _GNU_SOURCE only (glibc 2.28 and later).
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include "walferry_system.h"

int walferry_rename_noreplace(int olddirfd, const char *oldname, int newdirfd, const char *newname) {
    return renameat2(olddirfd, oldname, newdirfd, newname, RENAME_NOREPLACE);
}
