namespace Isthmus.ControlPlane.HealthChecks;

/// <summary>
/// Rise and fall (HAProxy's and Keepalived's vocabulary): an up backend goes down after
/// <see cref="Fall"/> consecutive failed checks, a down one comes up after <see cref="Rise"/>
/// consecutive successes. Any other result resets the opposite streak. A backend starts up, so a
/// new pool takes traffic at once and a dead backend leaves it after Fall × interval.
/// </summary>
public sealed class HealthStateMachine(int rise, int fall)
{
    public int Rise { get; } = Math.Max(rise, 1);

    public int Fall { get; } = Math.Max(fall, 1);

    public bool Up { get; private set; } = true;

    public int Successes { get; private set; }

    public int Failures { get; private set; }

    /// <summary>Feeds one check result; true when it changed <see cref="Up"/>.</summary>
    public bool Observe(bool healthy)
    {
        if (healthy)
        {
            Failures = 0;
            Successes++;
            if (!Up && Successes >= Rise)
            {
                Up = true;
                Successes = 0;
                return true;
            }
        }
        else
        {
            Successes = 0;
            Failures++;
            if (Up && Failures >= Fall)
            {
                Up = false;
                Failures = 0;
                return true;
            }
        }

        return false;
    }
}
