using Isthmus.ControlPlane.Config;
using Isthmus.DataPlane.Programming;

namespace Isthmus.ControlPlane.Apply;

/// <summary>
/// The running data plane as the control plane sees it: what it was started with (ports and settings
/// are fixed for its lifetime) and the one call that changes what it does, <see cref="Publish"/>
/// (a single <see cref="SnapshotSlot.Publish"/>).
/// </summary>
public interface IDataPlaneTarget
{
    /// <summary>The document the data plane opened its ports with; null until it has started.</summary>
    ConfigDocument? Started { get; }

    void Publish(DataPlaneSnapshot snapshot);
}

/// <summary>Who asks, from which address (the audit log's "who" and "from where").</summary>
public sealed record Actor(string Name, string Address)
{
    public static readonly Actor System = new("system", "local");
}
