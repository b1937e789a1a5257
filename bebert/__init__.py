"""BEBERT: binary ensemble BERT, from training to hardware."""
