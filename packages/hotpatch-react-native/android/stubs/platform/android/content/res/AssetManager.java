package android.content.res;

public abstract class AssetManager {
  public abstract java.io.InputStream open(String fileName) throws java.io.IOException;
}
