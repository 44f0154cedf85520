using FsCheck;
using FsCheck.Fluent;

namespace Isthmus.Mobility.Tests.Support;

/// <summary>Runs FsCheck properties as plain xunit facts (FsCheck.Xunit is not available here).</summary>
internal static class Properties
{
    public const int DefaultRuns = 300;

    public static void Check<T>(Gen<T> generator, Action<T> property, int runs = DefaultRuns) =>
        FsCheck.Check.One(Config.QuickThrowOnFailure.WithMaxTest(runs), Prop.ForAll(generator.ToArbitrary(), property));
}
