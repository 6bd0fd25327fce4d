// The one folder that imports libbz2. The parallel engine arrives with its issue.
import CBZip2

/// libbz2's version string, for example "1.0.8, 13-Jul-2019".
public func libbz2Version() -> String { String(cString: BZ2_bzlibVersion()) }
