// The system calls glibc declares only under _GNU_SOURCE, which Swift's Glibc module does not see.
#ifndef WALFERRY_SYSTEM_H
#define WALFERRY_SYSTEM_H

/// renameat2(2) with RENAME_NOREPLACE: renames `oldname` to `newname`, failing with EEXIST instead of
/// replacing an existing `newname`. Returns 0, or -1 with errno set (EINVAL or ENOSYS where the file
/// system or the kernel does not offer the flag).
int walferry_rename_noreplace(int olddirfd, const char *oldname, int newdirfd, const char *newname);

/* walferry-recover: syncfs(2), renameat2(RENAME_EXCHANGE), sync_file_range(SYNC_FILE_RANGE_WRITE). */
int walferry_syncfs(int fd);
int walferry_rename_exchange(int olddirfd, const char *oldname, int newdirfd, const char *newname);
int walferry_start_writeback(int fd);

#endif
