namespace Isthmus.DataPlane.Programming;

/// <summary>
/// Where the current snapshot lives. The control plane publishes with one reference swap; workers
/// read the reference once per batch. That is the whole synchronisation: a commit is hitless.
/// </summary>
public sealed class SnapshotSlot(DataPlaneSnapshot initial)
{
    private DataPlaneSnapshot _current = initial;

    public DataPlaneSnapshot Current => Volatile.Read(ref _current);

    public void Publish(DataPlaneSnapshot snapshot) => Volatile.Write(ref _current, snapshot);
}
