namespace Isthmus.DataPlane.Tests.Support;

/// <summary>Virtual time: tests of aging, storm control and damping advance it instead of sleeping.</summary>
public sealed class ManualTimeProvider : TimeProvider
{
    private long _ticks = TimeSpan.TicksPerDay;

    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    public override long GetTimestamp() => _ticks;

    public override DateTimeOffset GetUtcNow() => new(_ticks, TimeSpan.Zero);

    public void Advance(TimeSpan by) => _ticks += by.Ticks;
}
