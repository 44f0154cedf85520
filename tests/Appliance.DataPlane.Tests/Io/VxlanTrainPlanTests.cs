using Isthmus.DataPlane.Io;
using Isthmus.Testing;

namespace Isthmus.DataPlane.Tests.Io;

/// <summary>The UDP GSO sender's grouping of a transmit batch into trains, without sockets.</summary>
public sealed class VxlanTrainPlanTests
{
    private const uint VtepA = 0xC000_0202;
    private const uint VtepB = 0xC000_0203;

    [Fact]
    public void A_run_of_same_size_frames_longer_than_the_segment_limit_is_cut_at_64()
    {
        var frames = Frames(150, i => (VtepA, 0, 50000, 68));
        var plan = new VxlanTrainPlan(TxQueue.Capacity, 16);

        Assert.Equal(3, plan.Plan(frames));
        Assert.Equal([64, 64, 22], plan.Trains[..3].Select(t => t.Count));
        Assert.All(plan.Trains[..3], t => Assert.Equal(68, t.SegmentSize));
        Assert.Equal(Enumerable.Range(0, 150), plan.Order[..150]);
        Assert.Equal(1, plan.UsedSocketCount);
    }

    [Fact]
    public void A_shorter_frame_is_the_last_segment_and_a_longer_one_starts_a_new_train()
    {
        int[] lengths = [100, 100, 100, 60, 100, 100, 140, 140, 90, 90];
        var frames = Frames(lengths.Length, i => (VtepA, 0, 50000, lengths[i]));
        var plan = new VxlanTrainPlan(TxQueue.Capacity, 16);

        plan.Plan(frames);

        // [100 100 100 60] [100 100] [140 140 90] [90]
        Assert.Equal([(4, 100), (2, 100), (3, 140), (1, 90)], plan.Trains[..plan.TrainCount].Select(t => (t.Count, t.SegmentSize)));
        Assert.Equal(Enumerable.Range(0, lengths.Length), plan.Order[..lengths.Length]);
    }

    [Fact]
    public void Two_vteps_interleaved_form_one_train_each_in_their_own_order()
    {
        var frames = Frames(40, i => (i % 2 == 0 ? VtepA : VtepB, 0, 50000, 68));
        var plan = new VxlanTrainPlan(TxQueue.Capacity, 16);

        Assert.Equal(2, plan.Plan(frames));
        Assert.Equal(Enumerable.Range(0, 20).Select(i => 2 * i), Members(plan, frames, 0));
        Assert.Equal(Enumerable.Range(0, 20).Select(i => (2 * i) + 1), Members(plan, frames, 1));
        Assert.Equal(1, plan.UsedSocketCount); // one source port: both trains in one sendmmsg
    }

    [Fact]
    public void The_byte_limit_of_one_ipv4_datagram_ends_a_train()
    {
        var frames = Frames(64, _ => (VtepA, 0, 50000, 1500));
        var plan = new VxlanTrainPlan(TxQueue.Capacity, 16);

        plan.Plan(frames);

        // 43 × 1500 = 64,500 ≤ 65,507 < 44 × 1500.
        Assert.Equal([43, 21], plan.Trains[..plan.TrainCount].Select(t => t.Count));
    }

    [Fact]
    public void Flows_spread_over_the_sockets_by_the_entropy_ports_low_bits_and_every_socket_sends_its_trains_together()
    {
        var frames = Frames(64, i => (VtepA, 0, (ushort)(49152 + (i % 4)), 68));
        var plan = new VxlanTrainPlan(TxQueue.Capacity, 16);

        Assert.Equal(4, plan.Plan(frames));
        Assert.Equal([0, 1, 2, 3], plan.UsedSockets[..plan.UsedSocketCount]);
        for (var s = 0; s < 4; s++)
        {
            Assert.Equal(1, plan.SocketTrains[s]);
            var train = plan.Trains[plan.SocketFirst[s]];
            Assert.Equal(s, train.Socket);
            Assert.Equal(Enumerable.Range(0, 16).Select(i => (4 * i) + s), plan.Order.AsSpan(train.First, train.Count).ToArray());
        }
    }

    [Fact]
    public void Random_batches_keep_every_frame_once_keep_each_flows_order_and_obey_the_kernels_train_rules()
    {
        var random = new Random(7348);
        var plan = new VxlanTrainPlan(TxQueue.Capacity, 16);
        for (var n = 0; n < 2_000; n++)
        {
            var count = random.Next(1, TxQueue.Capacity + 1);
            var vteps = random.Next(1, 5);
            var ports = random.Next(1, 40);
            var sizes = random.Next(1, 4);
            var frames = Frames(count, _ => (
                VtepA + (uint)random.Next(vteps),
                (ushort)(random.Next(8) == 0 ? 4790 : 0),
                (ushort)(49152 + random.Next(ports)),
                sizes == 1 ? 68 : random.Next(sizes == 2 ? 1499 : 60, 1501)));

            var trains = plan.Plan(frames);

            // Every frame exactly once.
            Assert.Equal(Enumerable.Range(0, count), plan.Order[..count].Order());

            // Trains are grouped by socket, each socket's block where SocketFirst says.
            var covered = 0;
            for (var u = 0; u < plan.UsedSocketCount; u++)
            {
                var s = plan.UsedSockets[u];
                Assert.Equal(covered, plan.SocketFirst[s]);
                for (var t = plan.SocketFirst[s]; t < plan.SocketFirst[s] + plan.SocketTrains[s]; t++)
                {
                    Assert.Equal(s, plan.Trains[t].Socket);
                }

                covered += plan.SocketTrains[s];
            }

            Assert.Equal(trains, covered);
            var position = 0;
            for (var t = 0; t < trains; t++)
            {
                var train = plan.Trains[t];
                Assert.Equal(position, train.First);
                position += train.Count;
                var members = plan.Order.AsSpan(train.First, train.Count).ToArray();
                var head = frames[members[0]];
                Assert.InRange(train.Count, 1, VxlanTrainPlan.MaxSegments);
                Assert.Equal(head.Length, train.SegmentSize);
                Assert.Equal(members.Sum(i => frames[i].Length), train.Bytes);
                Assert.True(train.Bytes <= VxlanTrainPlan.MaxTrainBytes);
                for (var j = 0; j < members.Length; j++)
                {
                    var f = frames[members[j]];
                    Assert.Equal((head.DestinationIp, head.DestinationPort), (f.DestinationIp, f.DestinationPort));
                    Assert.Equal(train.Socket, plan.SocketOf(f.SourcePort));
                    if (j < members.Length - 1)
                    {
                        Assert.Equal(train.SegmentSize, f.Length); // only the last may be shorter
                    }
                    else
                    {
                        Assert.True(f.Length <= train.SegmentSize);
                    }
                }
            }

            // A flow (destination, source port) leaves in the batch's order.
            var sent = plan.Order[..count];
            foreach (var flow in sent.GroupBy(i => (frames[i].DestinationIp, frames[i].DestinationPort, frames[i].SourcePort)))
            {
                Assert.Equal(flow.Order(), flow);
            }
        }
    }

    [Fact]
    public void Planning_allocates_nothing()
    {
        var frames = Frames(256, i => (VtepA + (uint)(i % 3), 0, (ushort)(49152 + (i % 7)), i % 5 == 0 ? 60 : 68));
        var plan = new VxlanTrainPlan(TxQueue.Capacity, 16);
        plan.Plan(frames);

        var bytes = Allocations.FewestBytes(() =>
        {
            for (var i = 0; i < 100; i++)
            {
                plan.Plan(frames);
            }
        });

        Assert.Equal(0, bytes);
    }

    private static TxFrame[] Frames(int count, Func<int, (uint Vtep, ushort Port, ushort SourcePort, int Length)> of)
    {
        var frames = new TxFrame[count];
        for (var i = 0; i < count; i++)
        {
            var (vtep, port, source, length) = of(i);
            frames[i] = new TxFrame { Buffer = i, Offset = 128, Length = length, DestinationIp = vtep, DestinationPort = port, SourcePort = source };
        }

        return frames;
    }

    private static int[] Members(VxlanTrainPlan plan, TxFrame[] frames, int train) =>
        plan.Order.AsSpan(plan.Trains[train].First, plan.Trains[train].Count).ToArray();
}
