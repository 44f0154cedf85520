namespace Isthmus.ControlPlane.Logging;

/// <summary>
/// Every EventId the appliance logs, in one table (as YARP does), so an operator can filter on a
/// number and a reader can see at a glance what the appliance ever says.
/// </summary>
public static class LogEvents
{
    // 1xxx: data plane
    public const int DataPlaneForwarding = 1001;
    public const int DataPlaneStopped = 1002;
    public const int SnapshotPublished = 1003;
    public const int CpuIdleLatency = 1004;
    public const int CpuIdleLatencyFailed = 1005;
    public const int RealtimePriority = 1006;
    public const int RealtimePriorityFailed = 1007;
    public const int WorkerNice = 1008;
    public const int WorkerNiceFailed = 1009;
    public const int LoopPlacement = 1010;
    public const int LoopPlacementFailed = 1011;
    public const int MacMoved = 1101;
    public const int MacDamped = 1102;
    public const int RateLimitedSuppressed = 1199;

    // 12xx: load-balancer health checks
    public const int BackendDown = 1201;
    public const int BackendUp = 1202;
    public const int VipDown = 1203;
    public const int VipUp = 1204;

    // 2xxx: configuration
    public const int ConfigCommitted = 2001;
    public const int ConfigRejected = 2002;
    public const int CommitConfirmArmed = 2003;
    public const int CommitConfirmed = 2004;
    public const int CommitConfirmExpired = 2005;
    public const int ConfigSeeded = 2006;
    public const int ConfigLoaded = 2007;
    public const int ConfigSeedIgnored = 2008;

    // 3xxx: access
    public const int SetupTokenIssued = 3001;
    public const int FirstAdminCreated = 3002;
    public const int CertificateGenerated = 3003;
    public const int CertificateLoaded = 3004;
    public const int AuthenticationFailed = 3005;

    // Mobility and BGP (4xxx)
    public const int WorkloadMoved = 4001;
    public const int WorkloadFrozen = 4002;
    public const int SelfMigrated = 4003;
    public const int MobilityApplied = 4004;
    public const int HostRoutesCapped = 4005;
    public const int BgpPeersStarted = 4006;
    public const int BgpListenFailed = 4007;
}
