using System.Runtime.CompilerServices;

namespace Isthmus.DataPlane.Pipeline;

/// <summary>
/// One node of the packet graph. A stage handles a whole batch per call and writes each packet's
/// fate into its <see cref="PacketMeta"/>: it never calls the next stage itself (VPP's node, Netty's
/// handler name). Packets whose disposition is no longer <see cref="Disposition.Continue"/> are skipped.
/// </summary>
public abstract class PipelineStage
{
    protected PipelineStage(string name, Type dropReasons)
    {
        Name = name;
        DropReasons = Enum.GetNames(dropReasons);
    }

    /// <summary>Short lower-case name, used in counters ("decap.UnknownVtep") and traces.</summary>
    public string Name { get; }

    /// <summary>The names of this stage's drop reasons, indexed by code.</summary>
    public IReadOnlyList<string> DropReasons { get; }

    /// <summary>Position in the pipeline, assigned when the pipeline is composed.</summary>
    public byte Index { get; internal set; }

    /// <summary>
    /// True for a stage that leaves packets finished by a shortcut stage alone (<see cref="PacketBatch.Finished"/>):
    /// the runner does not call it for a batch whose packets are all finished, so such a batch costs
    /// no loop over it in that stage (VPP's frame holds only the packets a node has work for; here one
    /// count says whether the stage has any).
    /// </summary>
    public virtual bool SkipsFinished => false;

    public abstract void Process(PacketBatch batch, WorkerContext context);

    /// <summary>The worker's one-second heartbeat (aging, retries). What it originates leaves through encap.</summary>
    public virtual void Heartbeat(WorkerContext context)
    {
    }

    /// <summary>The worker is stopping: return every buffer the stage still holds (held packets, queues).</summary>
    public virtual void Release(WorkerContext context)
    {
    }

    /// <summary>Marks a packet dropped by this stage; the runner counts it and frees its buffer.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    protected void Drop(ref PacketMeta packet, ushort reason)
    {
        packet.Disposition = Disposition.Drop;
        packet.DropStage = Index;
        packet.DropCode = reason;
    }
}
