// The one module that imports libpq (see Package.swift for why it is not inside WalferryCore). walferry-backup's connection code arrives with its issue.
import CLibPQ

/// libpq's version as PQlibVersion() reports it, for example 150018 for 15.18.
public func libpqVersion() -> Int32 { PQlibVersion() }
