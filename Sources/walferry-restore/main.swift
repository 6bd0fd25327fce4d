// walferry-restore as an executable of its own (development and tests); the .deb installs it as a name
// of the multi-call binary, Sources/walferry. Both run the same code.
import WalferryTools

WalferryTool.restore.run()
