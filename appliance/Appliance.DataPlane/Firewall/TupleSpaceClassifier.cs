using System.Runtime.CompilerServices;
using Isthmus.DataPlane.Programming;

namespace Isthmus.DataPlane.Firewall;

/// <summary>
/// One expanded rule (a rule with several prefixes or port ranges becomes several atoms with the
/// same <see cref="Priority"/>). Protocol -1 and IcmpType -1 mean any; port ranges are inclusive.
/// </summary>
public readonly record struct RuleAtom(
    int Priority,
    uint Source,
    int SourceLength,
    uint Destination,
    int DestinationLength,
    int Protocol,
    ushort SourcePortLow,
    ushort SourcePortHigh,
    ushort DestinationPortLow,
    ushort DestinationPortHigh,
    ConnectionStates States)
{
    public static uint Mask(int length) => length <= 0 ? 0u : length >= 32 ? 0xFFFF_FFFFu : ~(0xFFFF_FFFFu >> length);

    /// <summary>The reference semantics (a linear first-match scan uses it; so do the tests).</summary>
    public bool Matches(in ClassifierKey key) =>
        ((key.Source ^ Source) & Mask(SourceLength)) == 0
        && ((key.Destination ^ Destination) & Mask(DestinationLength)) == 0
        && (Protocol < 0 || Protocol == key.Protocol)
        && key.SourcePort >= SourcePortLow && key.SourcePort <= SourcePortHigh
        && key.DestinationPort >= DestinationPortLow && key.DestinationPort <= DestinationPortHigh
        && (States & key.State) != 0;
}

/// <summary>What the classifier looks at: for ICMP the type travels as the destination port and the source port is 0.</summary>
public readonly record struct ClassifierKey(uint Source, uint Destination, byte Protocol, ushort SourcePort, ushort DestinationPort, ConnectionStates State);

/// <summary>
/// Tuple-space search (Srinivasan, Suri and Varghese, SIGCOMM 1999), as in OVS's megaflow classifier
/// and VPP's hash ACLs. Rules are grouped into tuples by the shape of what they match exactly:
/// (source prefix length, destination prefix length, protocol exact?, source port exact?,
/// destination port exact?). Each tuple is one exact-match hash probe on the masked packet key;
/// port ranges that are not a single port stay out of the key and are checked on the (few)
/// candidates in the bucket. Tuples are visited in order of their best (lowest) rule priority and
/// the search stops as soon as no remaining tuple can beat the best match found so far (priority
/// pruning), so the cost is one probe per tuple in the worst case, independent of the rule count.
/// </summary>
/// <remarks>Immutable after construction; safe to share between workers.</remarks>
public sealed class TupleSpaceClassifier
{
    private readonly Tuple[] _tuples;
    private readonly ulong[] _key0;
    private readonly ulong[] _key1;
    private readonly int[] _start;
    private readonly int[] _count;
    private readonly Candidate[] _candidates;
    private readonly int _mask;

    public TupleSpaceClassifier(IReadOnlyList<RuleAtom> atoms)
    {
        // Group atoms by tuple shape, then by masked key within the tuple.
        var shapes = new Dictionary<(int, int, bool, bool, bool), int>();
        var tuples = new List<Tuple>();
        var buckets = new Dictionary<(ulong, ulong), List<RuleAtom>>();
        foreach (var atom in atoms)
        {
            var protoExact = atom.Protocol >= 0;
            var sourceExact = atom.SourcePortLow == atom.SourcePortHigh;
            var destinationExact = atom.DestinationPortLow == atom.DestinationPortHigh;
            var shape = (atom.SourceLength, atom.DestinationLength, protoExact, sourceExact, destinationExact);
            if (!shapes.TryGetValue(shape, out var id))
            {
                id = tuples.Count;
                shapes.Add(shape, id);
                tuples.Add(new Tuple(
                    RuleAtom.Mask(atom.SourceLength),
                    RuleAtom.Mask(atom.DestinationLength),
                    protoExact ? (byte)0xFF : (byte)0,
                    sourceExact ? (ushort)0xFFFF : (ushort)0,
                    destinationExact ? (ushort)0xFFFF : (ushort)0,
                    atom.Priority,
                    (ushort)id));
            }
            else if (atom.Priority < tuples[id].MinPriority)
            {
                tuples[id] = tuples[id] with { MinPriority = atom.Priority };
            }

            var t = tuples[id];
            var key = Key(t, atom.Source, atom.Destination, (byte)Math.Max(atom.Protocol, 0), atom.SourcePortLow, atom.DestinationPortLow);
            if (!buckets.TryGetValue(key, out var list))
            {
                list = [];
                buckets.Add(key, list);
            }

            list.Add(atom);
        }

        tuples.Sort((a, b) => a.MinPriority.CompareTo(b.MinPriority));
        _tuples = [.. tuples];
        TupleCount = _tuples.Length;
        RuleAtomCount = atoms.Count;

        var capacity = 16;
        while (capacity < buckets.Count * 2)
        {
            capacity <<= 1;
        }

        _mask = capacity - 1;
        _key0 = new ulong[capacity];
        _key1 = new ulong[capacity];
        _start = new int[capacity];
        _count = new int[capacity];
        var candidates = new List<Candidate>(atoms.Count);
        foreach (var (key, list) in buckets)
        {
            list.Sort((a, b) => a.Priority.CompareTo(b.Priority));
            var slot = (int)Hash(key.Item1, key.Item2) & _mask;
            while (_count[slot] != 0)
            {
                slot = (slot + 1) & _mask;
            }

            _key0[slot] = key.Item1;
            _key1[slot] = key.Item2;
            _start[slot] = candidates.Count;
            _count[slot] = list.Count;
            foreach (var atom in list)
            {
                candidates.Add(new Candidate(atom.Priority, atom.SourcePortLow, atom.SourcePortHigh, atom.DestinationPortLow, atom.DestinationPortHigh, atom.States));
            }
        }

        _candidates = [.. candidates];
    }

    public static TupleSpaceClassifier Empty { get; } = new([]);

    /// <summary>Distinct tuples: the worst-case number of hash probes per lookup.</summary>
    public int TupleCount { get; }

    public int RuleAtomCount { get; }

    /// <summary>The lowest priority (first rule) matching <paramref name="key"/>, or -1.</summary>
    public int Classify(in ClassifierKey key)
    {
        var best = int.MaxValue;
        var tuples = _tuples;
        for (var t = 0; t < tuples.Length; t++)
        {
            ref readonly var tuple = ref tuples[t];
            if (tuple.MinPriority >= best)
            {
                break;
            }

            var (k0, k1) = Key(tuple, key.Source, key.Destination, key.Protocol, key.SourcePort, key.DestinationPort);
            var slot = (int)Hash(k0, k1) & _mask;
            while (true)
            {
                var count = _count[slot];
                if (count == 0)
                {
                    break;
                }

                if (_key0[slot] == k0 && _key1[slot] == k1)
                {
                    var start = _start[slot];
                    for (var c = start; c < start + count; c++)
                    {
                        ref readonly var candidate = ref _candidates[c];
                        if (candidate.Priority >= best)
                        {
                            break;
                        }

                        if (key.SourcePort >= candidate.SourcePortLow && key.SourcePort <= candidate.SourcePortHigh
                            && key.DestinationPort >= candidate.DestinationPortLow && key.DestinationPort <= candidate.DestinationPortHigh
                            && (candidate.States & key.State) != 0)
                        {
                            best = candidate.Priority;
                            break;
                        }
                    }

                    break;
                }

                slot = (slot + 1) & _mask;
            }
        }

        return best == int.MaxValue ? -1 : best;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (ulong, ulong) Key(in Tuple t, uint source, uint destination, byte protocol, ushort sourcePort, ushort destinationPort) =>
        (((ulong)(source & t.SourceMask) << 32) | (destination & t.DestinationMask),
         ((ulong)t.Id << 40) | ((ulong)(protocol & t.ProtocolMask) << 32) | ((uint)(sourcePort & t.SourcePortMask) << 16) | (uint)(destinationPort & t.DestinationPortMask));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Hash(ulong k0, ulong k1)
    {
        var h = (k0 * 0x9E37_79B9_7F4A_7C15UL) ^ (k1 * 0xC2B2_AE3D_27D4_EB4FUL);
        h ^= h >> 29;
        h *= 0xBF58_476D_1CE4_E5B9UL;
        return (uint)(h ^ (h >> 32));
    }

    private readonly record struct Tuple(uint SourceMask, uint DestinationMask, byte ProtocolMask, ushort SourcePortMask, ushort DestinationPortMask, int MinPriority, ushort Id);

    private readonly record struct Candidate(int Priority, ushort SourcePortLow, ushort SourcePortHigh, ushort DestinationPortLow, ushort DestinationPortHigh, ConnectionStates States);
}
