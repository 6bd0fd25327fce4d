/// walferry's version, printed by every tool's --version and stamped into the .deb.
public let walferryVersion = "0.1.0"
