using FsCheck;
using FsCheck.Fluent;
using Isthmus.DataPlane.Firewall;
using Isthmus.DataPlane.Programming;

namespace Isthmus.DataPlane.Tests.Firewall;

public class TupleSpaceClassifierTests
{
    /// <summary>The reference: the first rule (lowest priority) whose atom matches, by a linear scan.</summary>
    private static int Linear(IReadOnlyList<RuleAtom> atoms, in ClassifierKey key)
    {
        var best = -1;
        foreach (var atom in atoms)
        {
            if (atom.Matches(key) && (best < 0 || atom.Priority < best))
            {
                best = atom.Priority;
            }
        }

        return best;
    }

    // Small value spaces so random packets actually hit random rules.
    private static readonly uint[] Networks = [0x0A00_0000, 0x0A01_0000, 0x0A01_0100, 0xC0A8_0000, 0xC0A8_0101];
    private static readonly int[] Lengths = [0, 8, 16, 24, 32];
    private static readonly ushort[] Ports = [22, 53, 80, 443, 1024, 8080];

    private static Gen<RuleAtom> AtomGen(int priority) =>
        from src in Gen.Elements(Networks)
        from srcLen in Gen.Elements(Lengths)
        from dst in Gen.Elements(Networks)
        from dstLen in Gen.Elements(Lengths)
        from proto in Gen.Elements(-1, 6, 17, 1)
        from dportKind in Gen.Choose(0, 2)
        from dport in Gen.Elements(Ports)
        from span in Gen.Choose(1, 2000)
        from sportAny in Gen.Elements(true, true, false)
        from sport in Gen.Elements(Ports)
        from states in Gen.Elements(ConnectionStates.New, ConnectionStates.New | ConnectionStates.Invalid, ConnectionStates.Invalid, ConnectionStates.Any)
        select new RuleAtom(
            priority,
            src & RuleAtom.Mask(srcLen),
            srcLen,
            dst & RuleAtom.Mask(dstLen),
            dstLen,
            proto,
            sportAny ? (ushort)0 : sport,
            sportAny ? ushort.MaxValue : sport,
            dportKind == 0 ? (ushort)0 : dport,
            dportKind == 0 ? ushort.MaxValue : dportKind == 1 ? dport : (ushort)Math.Min(65535, dport + span),
            states);

    private static Gen<ClassifierKey> KeyGen =>
        from src in Gen.Elements(Networks)
        from srcHost in Gen.Elements(0u, 1u, 0x0101u, 0x01_0000u)
        from dst in Gen.Elements(Networks)
        from dstHost in Gen.Elements(0u, 1u, 0x0101u)
        from proto in Gen.Elements((byte)6, (byte)17, (byte)1, (byte)47)
        from sport in Gen.Elements(Ports)
        from dport in Gen.OneOf(Gen.Elements(Ports), Gen.Choose(0, 65535).Select(p => (ushort)p))
        from state in Gen.Elements(ConnectionStates.New, ConnectionStates.Invalid)
        select new ClassifierKey(src | srcHost, dst | dstHost, proto, sport, dport, state);

    [Fact]
    public void Tuple_space_search_agrees_with_a_linear_first_match_scan()
    {
        // Atoms sharing a priority are one rule with several prefixes or ports.
        var rules = Gen.ArrayOf(Gen.Choose(0, 40).SelectMany(AtomGen));
        var scenario = rules.SelectMany(atoms => Gen.ArrayOf(KeyGen, 40).Select(keys => (Atoms: atoms, Keys: keys)));

        Prop.ForAll(scenario.ToArbitrary(), s =>
        {
            var classifier = new TupleSpaceClassifier(s.Atoms);
            foreach (var key in s.Keys)
            {
                var expected = Linear(s.Atoms, key);
                var actual = classifier.Classify(key);
                if (expected != actual)
                {
                    throw new InvalidOperationException($"key {key}: linear {expected}, tuple space {actual}");
                }
            }
        }).QuickCheckThrowOnFailure();
    }

    [Fact]
    public void Ten_thousand_rules_fall_into_a_handful_of_tuples()
    {
        var random = new Random(7);
        var atoms = new List<RuleAtom>();
        int[] srcLens = [8, 16, 24, 32];
        for (var i = 0; i < 10_000; i++)
        {
            var srcLen = srcLens[random.Next(srcLens.Length)];
            var port = (ushort)random.Next(1, 65000);
            atoms.Add(new RuleAtom(i, (uint)random.Next() & RuleAtom.Mask(srcLen), srcLen, (uint)random.Next() & RuleAtom.Mask(32), 32, 6, 0, ushort.MaxValue, port, port, ConnectionStates.New));
        }

        var classifier = new TupleSpaceClassifier(atoms);
        Assert.Equal(4, classifier.TupleCount);
        var hit = atoms[9_999];
        Assert.Equal(9_999, classifier.Classify(new ClassifierKey(hit.Source | (~RuleAtom.Mask(hit.SourceLength) & 1), hit.Destination, 6, 5555, hit.DestinationPortLow, ConnectionStates.New)));
        Assert.Equal(-1, classifier.Classify(new ClassifierKey(hit.Source, hit.Destination, 17, 5555, hit.DestinationPortLow, ConnectionStates.New)));
    }
}
