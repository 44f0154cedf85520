using Isthmus.DataPlane.Pipeline;

namespace Isthmus.DataPlane.Nat;

public enum NatDrop : ushort
{
}

/// <summary>Placeholder: passes every packet on. Issue 3 fills it in.</summary>
public sealed class NatStage() : PipelineStage("nat", typeof(NatDrop))
{
    public override void Process(PacketBatch batch, WorkerContext context)
    {
    }
}
