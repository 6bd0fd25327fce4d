// The multi-call binary the .deb installs as /usr/lib/walferry/walferry, with walferry-archive,
// walferry-restore and walferry-cleanup in /usr/bin as symbolic links to it: like busybox, it runs
// the tool whose name it was started by (under any other name: an error and exit 127). One file
// instead of three keeps the package small: each executable carries its own static Swift runtime,
// ~15 MB stripped.

import WalferryTools

WalferryTool.runInvoked()
