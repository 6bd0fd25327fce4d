// The one folder that imports libpq. walferry-backup's connection code arrives with its issue.
import CLibPQ

/// libpq's version as PQlibVersion() reports it, for example 150018 for 15.18.
public func libpqVersion() -> Int32 { PQlibVersion() }
