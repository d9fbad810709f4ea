package android.content;

public class Intent {
  public static final int FLAG_ACTIVITY_NEW_TASK = 0x10000000;
  public static final int FLAG_ACTIVITY_CLEAR_TASK = 0x00008000;
  private int flags;

  public Intent addFlags(int flags) {
    this.flags |= flags;
    return this;
  }

  public int getFlags() {
    return flags;
  }
}
